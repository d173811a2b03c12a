//go:build cgo && !nospeex

package echo

/*
#cgo pkg-config: speexdsp
#include <speex/speex_resampler.h>
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// resampleQuality is speexdsp's resampler quality (0-10): 4, its default
// ("VoIP"), keeps the stopband well below the echo left after
// cancellation and costs a third of capture/pcmu's 70 dB filter.
const resampleQuality = 4

// speexResampler converts mono S16 between two fixed rates with
// speexdsp's resampler: the library the canceller comes from, and cheaper
// than capture/pcmu's for the three conversions a chunk needs.
type speexResampler struct {
	st      *C.SpeexResamplerState
	in, out int
	buf     []int16
	// The lengths speexdsp reads and writes back: fields, so passing
	// their addresses allocates nothing per call.
	inLen, outLen C.spx_uint32_t
}

func newResampler(in, out int) (resampler, error) {
	var e C.int
	st := C.speex_resampler_init(1, C.spx_uint32_t(in), C.spx_uint32_t(out), resampleQuality, &e)
	if st == nil || e != 0 {
		return nil, fmt.Errorf("echo: speex_resampler_init %d Hz to %d Hz: error %d", in, out, int(e))
	}
	return &speexResampler{st: st, in: in, out: out}, nil
}

// Process converts src; the result is valid until the next call. A 20 ms
// chunk gives 20 ms (the rates here are whole multiples of 50 Hz).
func (r *speexResampler) Process(src []int16) []int16 {
	want := len(src)*r.out/r.in + 1
	if cap(r.buf) < want {
		r.buf = make([]int16, want)
	}
	r.inLen, r.outLen = C.spx_uint32_t(len(src)), C.spx_uint32_t(want)
	C.speex_resampler_process_int(r.st, 0, (*C.spx_int16_t)(unsafe.Pointer(&src[0])), &r.inLen,
		(*C.spx_int16_t)(unsafe.Pointer(&r.buf[0])), &r.outLen)
	return r.buf[:r.outLen]
}

// Offset is where the first output sample of a call lies relative to its
// first input sample: earlier by the filter's delay.
func (r *speexResampler) Offset() time.Duration {
	return -time.Duration(C.speex_resampler_get_input_latency(r.st)) * time.Second / time.Duration(r.in)
}

func (r *speexResampler) Close() { C.speex_resampler_destroy(r.st) }
