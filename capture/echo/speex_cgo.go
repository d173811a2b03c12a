//go:build cgo && !nospeex

package echo

/*
#cgo pkg-config: speexdsp
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <stdlib.h>

static int callbox_echo_ctl_int(SpeexEchoState *st, int req, int v) { return speex_echo_ctl(st, req, &v); }
static int callbox_pp_ctl_int(SpeexPreprocessState *st, int req, int v) { return speex_preprocess_ctl(st, req, &v); }
static int callbox_pp_ctl_float(SpeexPreprocessState *st, int req, float v) { return speex_preprocess_ctl(st, req, &v); }
static int callbox_pp_set_echo(SpeexPreprocessState *st, SpeexEchoState *e) { return speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_ECHO_STATE, e); }
static int callbox_echo_ir_size(SpeexEchoState *st) { int n = 0; speex_echo_ctl(st, SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE, &n); return n; }
static void callbox_echo_ir(SpeexEchoState *st, spx_int32_t *ir) { speex_echo_ctl(st, SPEEX_ECHO_GET_IMPULSE_RESPONSE, ir); }
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Available reports whether this build has the echo canceller.
const Available = true

// Library names what cancels the echo.
const Library = "speexdsp"

// Canceller is a speexdsp echo canceller and preprocessor. Not safe for
// concurrent use.
type Canceller struct {
	cfg    Config
	frame  int
	echo   *C.SpeexEchoState
	pp     *C.SpeexPreprocessState
	ir     []int32
	tmp    []int16 // one frame: speexdsp does not cancel in place
	closed bool
}

// New returns a canceller for cfg.
func New(cfg Config) (*Canceller, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	frame := cfg.FrameSamples()
	tail := int(int64(cfg.Rate) * int64(cfg.Tail) / int64(time.Second))
	c := &Canceller{cfg: cfg, frame: frame, tmp: make([]int16, frame)}
	c.echo = C.speex_echo_state_init(C.int(frame), C.int(tail))
	if c.echo == nil {
		return nil, fmt.Errorf("echo: speex_echo_state_init(%d, %d) failed", frame, tail)
	}
	C.callbox_echo_ctl_int(c.echo, C.SPEEX_ECHO_SET_SAMPLING_RATE, C.int(cfg.Rate))
	if !cfg.NoPreprocess {
		c.pp = C.speex_preprocess_state_init(C.int(frame), C.int(cfg.Rate))
		if c.pp == nil {
			C.speex_echo_state_destroy(c.echo)
			return nil, fmt.Errorf("echo: speex_preprocess_state_init(%d, %d) failed", frame, cfg.Rate)
		}
		C.callbox_pp_set_echo(c.pp, c.echo)
		C.callbox_pp_ctl_int(c.pp, C.SPEEX_PREPROCESS_SET_DENOISE, 1)
		C.callbox_pp_ctl_int(c.pp, C.SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, C.int(cfg.NoiseSuppressDB))
		agc := 0
		if cfg.AGC {
			agc = 1
		}
		C.callbox_pp_ctl_int(c.pp, C.SPEEX_PREPROCESS_SET_AGC, C.int(agc))
	}
	return c, nil
}

// Config returns the canceller's configuration, defaults filled in.
func (c *Canceller) Config() Config { return c.cfg }

// Process cancels far's echo in mic and writes the result to out. All
// three have the same length, a whole number of frames (FrameSamples);
// out may be mic.
func (c *Canceller) Process(mic, far, out []int16) error {
	if c.closed {
		return ErrClosed
	}
	if len(mic) != len(far) || len(out) != len(mic) || len(mic)%c.frame != 0 {
		return fmt.Errorf("echo: lengths mic %d far %d out %d: want equal, whole frames of %d", len(mic), len(far), len(out), c.frame)
	}
	for i := 0; i < len(mic); i += c.frame {
		m := (*C.spx_int16_t)(unsafe.Pointer(&mic[i]))
		f := (*C.spx_int16_t)(unsafe.Pointer(&far[i]))
		o := (*C.spx_int16_t)(unsafe.Pointer(&out[i]))
		if &mic[i] == &out[i] {
			// speexdsp reads rec while writing out: not in place.
			to := (*C.spx_int16_t)(unsafe.Pointer(&c.tmp[0]))
			C.speex_echo_cancellation(c.echo, m, f, to)
			copy(out[i:i+c.frame], c.tmp)
		} else {
			C.speex_echo_cancellation(c.echo, m, f, o)
		}
		if c.pp != nil {
			C.speex_preprocess_run(c.pp, o)
		}
	}
	return nil
}

// Reset forgets the echo path (after the reference was realigned).
func (c *Canceller) Reset() {
	if !c.closed {
		C.speex_echo_state_reset(c.echo)
	}
}

// EchoDelay is the delay of the strongest tap of the adapted filter: how
// far the echo lags the reference (the room plus what the alignment
// missed). Diagnostics for the HIL test and the log.
func (c *Canceller) EchoDelay() time.Duration {
	if c.closed {
		return 0
	}
	n := int(C.callbox_echo_ir_size(c.echo))
	if n <= 0 {
		return 0
	}
	if len(c.ir) != n {
		c.ir = make([]int32, n)
	}
	C.callbox_echo_ir(c.echo, (*C.spx_int32_t)(unsafe.Pointer(&c.ir[0])))
	best, at := int64(0), 0
	for i, v := range c.ir {
		a := int64(v)
		if a < 0 {
			a = -a
		}
		if a > best {
			best, at = a, i
		}
	}
	return time.Duration(at) * time.Second / time.Duration(c.cfg.Rate)
}

// Close frees the speexdsp states.
func (c *Canceller) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.pp != nil {
		C.speex_preprocess_state_destroy(c.pp)
	}
	C.speex_echo_state_destroy(c.echo)
	return nil
}
