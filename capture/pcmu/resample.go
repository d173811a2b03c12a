package pcmu

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrRate reports a sample rate the resampler cannot convert.
var ErrRate = errors.New("pcmu: unsupported sample rate")

// Resampler converts mono S16 audio between two fixed rates with a
// polyphase windowed-sinc (Kaiser) low-pass filter. Plain decimation (keep
// every 6th sample of 48 kHz) would fold everything between 4 and 24 kHz
// (keyboard clicks, sibilants, fan whine) back into the 0-4 kHz band as
// audible noise; the filter removes it first.
//
// The filter state carries across calls, so consecutive chunks are filtered
// as one continuous signal. In steady state (same chunk length) Process
// allocates nothing.
type Resampler struct {
	in, out int // rates
	up, dn  int // out/in reduced to up/dn
	taps    int // filter taps per phase
	// coef[p*taps+k] is the filter tap for phase p and delay taps-1-k
	// (reversed, so each output is a plain dot product with the input in
	// time order), pre-scaled by up so the passband gain is 1.
	coef []float32
	hist []float32 // last taps-1 input samples, then the current input
	pos  int64     // position of the next output, in units of 1/up input samples, relative to hist[taps-1]
	half float64   // the filter's group delay, (length-1)/2, in units of 1/up input samples
	lead time.Duration
	dst  []int16
}

const (
	// Passband to 3.4 kHz (telephone band), stopband from 4 kHz at
	// 8 kHz output; scaled with the lower of the two rates otherwise.
	passFrac = 0.85 // passband edge as a fraction of the lower Nyquist
	attenDB  = 70.0 // stopband attenuation
	maxCoef  = 1 << 20
)

// NewResampler returns a resampler from rate in to rate out (Hz).
func NewResampler(in, out int) (*Resampler, error) {
	if in <= 0 || out <= 0 || in > 384000 || out > 384000 {
		return nil, fmt.Errorf("%w: %d Hz to %d Hz", ErrRate, in, out)
	}
	g := gcd(in, out)
	r := &Resampler{in: in, out: out, up: out / g, dn: in / g}
	if r.up == 1 && r.dn == 1 {
		r.taps = 1
		r.coef = []float32{1}
		r.hist = make([]float32, 0, 1024)
		return r, nil
	}
	// Kaiser design (Oppenheim & Schafer 7.6) at the upsampled rate
	// in*up: cutoff midway between the passband edge and the lower Nyquist.
	nyq := float64(min(in, out)) / 2
	fs := float64(in) * float64(r.up)
	pass := passFrac * nyq
	width := 2 * math.Pi * (nyq - pass) / fs // transition width, rad/sample
	n := int(math.Ceil((attenDB-8)/(2.285*width))) + 1
	taps := (n + r.up - 1) / r.up
	if taps*r.up > maxCoef {
		return nil, fmt.Errorf("%w: %d Hz to %d Hz needs a %d-tap filter", ErrRate, in, out, taps*r.up)
	}
	n = taps * r.up
	beta := 0.1102 * (attenDB - 8.7)
	fc := (pass + nyq) / 2 / fs // normalised cutoff, cycles/sample
	mid := float64(n-1) / 2
	proto := make([]float64, n)
	for i := range proto {
		x := float64(i) - mid
		sinc := 2 * fc
		if x != 0 {
			sinc = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		w := bessel0(beta*math.Sqrt(1-(x/mid)*(x/mid))) / bessel0(beta)
		proto[i] = sinc * w * float64(r.up)
	}
	r.taps = taps
	r.half = float64(n-1) / 2
	r.coef = make([]float32, n)
	for p := 0; p < r.up; p++ {
		for k := 0; k < taps; k++ {
			r.coef[p*taps+taps-1-k] = float32(proto[p+k*r.up])
		}
	}
	r.hist = make([]float32, taps-1, taps-1+1024)
	return r, nil
}

// InRate and OutRate return the rates the resampler converts between.
func (r *Resampler) InRate() int  { return r.in }
func (r *Resampler) OutRate() int { return r.out }

// Process filters src and returns the output samples it completes. The
// result is owned by the resampler and valid until the next call. Over many
// calls the output count is len(input)*out/in; a 20 ms chunk of any rate that
// is a multiple of 50 Hz gives exactly 20 ms of output.
func (r *Resampler) Process(src []int16) []int16 {
	// The first output's content is the input at pos minus the filter's
	// group delay (a linear-phase FIR delays every frequency equally).
	r.lead = time.Duration((float64(r.pos) - r.half) * float64(time.Second) / (float64(r.in) * float64(r.up)))
	h := r.taps - 1
	r.hist = r.hist[:h]
	for _, s := range src {
		r.hist = append(r.hist, float32(s))
	}
	// Output j is at input position pos/up; it needs input samples up to
	// that index, which is hist[h+idx].
	avail := int64(len(src)) * int64(r.up)
	n := 0
	if r.pos < avail {
		n = int((avail - r.pos + int64(r.dn) - 1) / int64(r.dn))
	}
	if cap(r.dst) < n {
		r.dst = make([]int16, n)
	}
	r.dst = r.dst[:n]
	for j := range n {
		p := r.pos % int64(r.up)
		idx := int(r.pos/int64(r.up)) + h
		c := r.coef[int(p)*r.taps : int(p+1)*r.taps]
		x := r.hist[idx-len(c)+1 : idx+1]
		r.dst[j] = clamp16(dot(c, x))
		r.pos += int64(r.dn)
	}
	r.pos -= avail
	// Keep the last h input samples as history for the next call.
	copy(r.hist, r.hist[len(r.hist)-h:])
	r.hist = r.hist[:h]
	return r.dst
}

// Offset returns where, relative to the first input sample of the last
// Process call, the first output sample of that call lies in time. It is
// negative by about the filter's delay (about 3.6 ms from 48 kHz), so
// capture time + Offset is the capture time of the first output sample.
func (r *Resampler) Offset() time.Duration { return r.lead }

// Reset clears the filter history, e.g. after a gap in the input.
func (r *Resampler) Reset() {
	r.hist = r.hist[:r.taps-1]
	clear(r.hist)
	r.pos = 0
}

// dot returns the dot product of c and x (same length), with four
// independent accumulators so the adds pipeline.
func dot(c, x []float32) float32 {
	x = x[:len(c)]
	var a0, a1, a2, a3 float32
	k := 0
	for ; k+4 <= len(c); k += 4 {
		a0 += c[k] * x[k]
		a1 += c[k+1] * x[k+1]
		a2 += c[k+2] * x[k+2]
		a3 += c[k+3] * x[k+3]
	}
	for ; k < len(c); k++ {
		a0 += c[k] * x[k]
	}
	return (a0 + a1) + (a2 + a3)
}

func clamp16(v float32) int16 {
	v = float32(math.Round(float64(v)))
	if v > math.MaxInt16 {
		return math.MaxInt16
	}
	if v < math.MinInt16 {
		return math.MinInt16
	}
	return int16(v)
}

// bessel0 is the zeroth-order modified Bessel function of the first kind
// (power series; converges fast for the beta values used here).
func bessel0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-12 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
