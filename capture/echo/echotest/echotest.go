// Package echotest makes what echo cancellation is measured with: a
// speech-like signal (a voiced pulse train through moving formants, in
// syllables and pauses, with some fricative noise), a room (delay,
// attenuation and a short decaying impulse response) and the figures:
// echo return loss enhancement and level changes. The unit tests of
// capture/echo and the HIL test's programs share it, so both measure the
// same thing.
package echotest

import (
	"math"
	"math/rand/v2"
)

// Talker is the voice Speech imitates.
type Talker struct {
	F0   float64 // mean pitch, Hz (a man ~110, a woman ~210)
	Seed uint64
}

// vowels are (F1, F2, F3) formant sets, Hz.
var vowels = [][3]float64{
	{730, 1090, 2440}, {270, 2290, 3010}, {300, 870, 2240}, {530, 1840, 2480},
	{660, 1720, 2410}, {570, 840, 2410}, {440, 1020, 2240}, {490, 1350, 1690},
}

// Speech returns n samples at rate of speech-like sound with peak about
// amp (of full scale): syllables of 120-320 ms separated by 40-160 ms, a
// longer pause now and then, pitch gliding around t.F0 with 1 % jitter and
// breath noise, formants changing each syllable, syllables equally loud within 6 dB, about one syllable in five starting with a fricative.
func Speech(t Talker, rate, n int, amp float64) []int16 {
	rng := rand.New(rand.NewPCG(t.Seed, 0x5eec4))
	out := make([]float64, n)
	fs := float64(rate)
	i := 0
	phase := 0.0
	for i < n {
		// A syllable.
		sylLen := int((0.12 + 0.2*rng.Float64()) * fs)
		v := vowels[rng.IntN(len(vowels))]
		f0 := t.F0 * (0.85 + 0.3*rng.Float64())
		glide := (rng.Float64() - 0.5) * 0.3 * f0
		var res [3]resonator
		for k := range res {
			res[k] = newResonator(v[k]*(0.9+0.2*rng.Float64()), 60+40*float64(k), fs)
		}
		fric := rng.IntN(5) == 0
		fricLen := int(0.06 * fs)
		hp := highpass{}
		start := i
		for j := 0; j < sylLen && i < n; j, i = j+1, i+1 {
			x := float64(j) / float64(sylLen)
			env := math.Sin(math.Pi * x) // rise and fall
			var s float64
			if fric && j < fricLen {
				s = 0.3 * hp.step(rng.NormFloat64()) * math.Sin(math.Pi*float64(j)/float64(fricLen))
			} else {
				f := f0 + glide*x
				phase += f / fs
				// Glottal pulse: a sharp pulse once a period, its
				// period jittered by 1 % like a real voice's, plus
				// breath noise (aspiration).
				pulse := 0.15 * rng.NormFloat64()
				if phase >= 1 {
					phase -= 1 + 0.01*rng.NormFloat64()
					pulse += 1
				}
				for k := range res {
					s += res[k].step(pulse) * []float64{1, 0.6, 0.3}[k]
				}
				s *= env
			}
			out[i] = s
		}
		// Syllables of a talker are about equally loud (within a few
		// dB); the resonators alone would make a vowel whose formant
		// meets a harmonic 10-15 dB louder than the rest.
		var e float64
		for _, v := range out[start:i] {
			e += v * v
		}
		if e > 0 {
			g := math.Pow(10, (rng.Float64()-0.5)*6/20) / math.Sqrt(e/float64(i-start))
			for k := start; k < i; k++ {
				out[k] *= g
			}
		}
		// A gap, sometimes a pause.
		gap := int((0.04 + 0.12*rng.Float64()) * fs)
		if rng.IntN(6) == 0 {
			gap += int((0.3 + 0.4*rng.Float64()) * fs)
		}
		i += gap
	}
	peak := 0.0
	for _, v := range out {
		peak = max(peak, math.Abs(v))
	}
	pcm := make([]int16, n)
	if peak == 0 {
		return pcm
	}
	for i, v := range out {
		pcm[i] = int16(v / peak * amp * 32767)
	}
	return pcm
}

// resonator is a two-pole band-pass at a formant.
type resonator struct{ a1, a2, g, y1, y2 float64 }

func newResonator(f, bw, fs float64) resonator {
	r := math.Exp(-math.Pi * bw / fs)
	return resonator{a1: 2 * r * math.Cos(2*math.Pi*f/fs), a2: -r * r, g: 1 - r}
}

func (r *resonator) step(x float64) float64 {
	y := r.g*x + r.a1*r.y1 + r.a2*r.y2
	r.y2, r.y1 = r.y1, y
	return y
}

type highpass struct{ x1 float64 }

func (h *highpass) step(x float64) float64 { y := x - h.x1; h.x1 = x; return y }

// Room is an echo path: the far end's sound delayed, attenuated and
// smeared by a short decaying impulse response (early reflections).
type Room struct {
	Rate    int
	DelayMS float64 // bulk delay, ms
	GainDB  float64 // attenuation of the direct sound, dB (negative)
	TailMS  float64 // length of the reflections, ms
	Seed    uint64
	impulse []float64
	built   bool
}

// Impulse returns the room's impulse response (direct sound at the delay).
func (r *Room) Impulse() []float64 {
	if r.built {
		return r.impulse
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0x4007))
	d := int(r.DelayMS * float64(r.Rate) / 1000)
	tail := int(r.TailMS * float64(r.Rate) / 1000)
	h := make([]float64, d+tail+1)
	g := math.Pow(10, r.GainDB/20)
	h[d] = g
	for k := 1; k <= tail; k++ {
		// Reflections decaying 60 dB over the tail, a third as loud as the
		// direct sound at first.
		decay := math.Pow(10, -3*float64(k)/float64(tail))
		h[d+k] = g * 0.35 * decay * rng.NormFloat64() * 0.3
	}
	r.impulse, r.built = h, true
	return h
}

// Apply returns far convolved with the room (same length as far).
func (r *Room) Apply(far []int16) []float64 {
	h := r.Impulse()
	type tap struct {
		k int
		c float64
	}
	var taps []tap
	for k, c := range h {
		if c != 0 {
			taps = append(taps, tap{k, c})
		}
	}
	out := make([]float64, len(far))
	for i := range out {
		var y float64
		for _, t := range taps {
			if j := i - t.k; j >= 0 {
				y += t.c * float64(far[j])
			}
		}
		out[i] = y
	}
	return out
}

// Mix adds signals (float samples) and clips to int16.
func Mix(parts ...[]float64) []int16 {
	n := 0
	for _, p := range parts {
		n = max(n, len(p))
	}
	out := make([]int16, n)
	for i := range out {
		var s float64
		for _, p := range parts {
			if i < len(p) {
				s += p[i]
			}
		}
		out[i] = int16(max(min(s, 32767), -32768))
	}
	return out
}

// Float converts PCM to float samples.
func Float(x []int16) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// Energy is the sum of squares of x[from:to].
func Energy[T int16 | float64](x []T, from, to int) float64 {
	var e float64
	for _, v := range x[from:min(to, len(x))] {
		f := float64(v)
		e += f * f
	}
	return e
}

// DB is 10 log10(a/b).
func DB(a, b float64) float64 { return 10 * math.Log10(a/b) }

// ERLE is the echo return loss enhancement over [from, to): the echo's
// energy in the microphone signal against what is left of it after
// cancellation, in dB.
func ERLE(mic, out []int16, from, to int) float64 {
	return DB(Energy(mic, from, to), Energy(out, from, to))
}

// LevelDBFS is the RMS level of x[from:to] in dB relative to full scale.
func LevelDBFS[T int16 | float64](x []T, from, to int) float64 {
	n := min(to, len(x)) - from
	return 10 * math.Log10(Energy(x, from, to)/float64(n)/(32768*32768))
}

// Reflections returns a sparse room: the direct sound after delayMS at
// gainDB, then n early reflections spread over tailMS, each weaker (the
// HIL test's room: cheap enough to run live under emulation).
func Reflections(rate int, delayMS, gainDB, tailMS float64, n int, seed uint64) []Tap {
	rng := rand.New(rand.NewPCG(seed, 0x4eef))
	d := int(delayMS * float64(rate) / 1000)
	g := math.Pow(10, gainDB/20)
	taps := []Tap{{Delay: d, Gain: g}}
	tail := int(tailMS * float64(rate) / 1000)
	for k := 1; k <= n; k++ {
		at := d + 1 + rng.IntN(tail)
		decay := math.Pow(10, -2*float64(at-d)/float64(tail)) // -40 dB over the tail
		sign := 1.0
		if rng.IntN(2) == 0 {
			sign = -1
		}
		taps = append(taps, Tap{Delay: at, Gain: sign * g * 0.5 * decay})
	}
	return taps
}

// Tap is one path of a sparse room: a delay in samples and a gain.
type Tap struct {
	Delay int
	Gain  float64
}

// Filter applies sparse taps to a signal that arrives in pieces.
type Filter struct {
	taps []Tap
	hist []float64 // the last maxDelay input samples
	max  int
	out  []float64
}

// NewFilter returns a streaming filter over taps.
func NewFilter(taps []Tap) *Filter {
	m := 0
	for _, t := range taps {
		m = max(m, t.Delay)
	}
	return &Filter{taps: taps, max: m, hist: make([]float64, m)}
}

// Process filters in (continuing the previous call) and returns the
// output, valid until the next call.
func (f *Filter) Process(in []int16) []float64 {
	buf := append(f.hist, make([]float64, len(in))...)
	for i, v := range in {
		buf[f.max+i] = float64(v)
	}
	if cap(f.out) < len(in) {
		f.out = make([]float64, len(in))
	}
	out := f.out[:len(in)]
	for i := range in {
		var y float64
		for _, t := range f.taps {
			y += t.Gain * buf[f.max+i-t.Delay]
		}
		out[i] = y
	}
	f.hist = append(f.hist[:0], buf[len(buf)-f.max:]...)
	return out
}
