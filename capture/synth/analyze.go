package synth

import "math"

// Measuring the microphone's signal after it has crossed a codec and a
// network: the tone's frequency says the audio decodes as sent (right clock
// rate, no garbling), the clicks mark fixed points in time for gaps and
// latency.

// Goertzel returns the amplitude, as a fraction of full scale, of the
// frequency component freq in samples (rate samples per second).
func Goertzel(samples []int16, rate int, freq float64) float64 {
	if len(samples) == 0 || rate <= 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x)/32768 + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * math.Sqrt(math.Max(power, 0)) / float64(len(samples))
}

// RMS returns the root mean square of samples as a fraction of full scale.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		v := float64(x) / 32768
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// ToneFrequency estimates the frequency of the dominant tone in samples
// from its rising zero crossings, interpolated between samples. It returns 0
// when there are fewer than two crossings.
func ToneFrequency(samples []int16, rate int) float64 {
	// Hysteresis: a crossing counts only after the signal has been clearly
	// negative, so noise around zero cannot count twice.
	const hyst = 328 // 1% of full scale
	armed := false
	first, last := -1.0, -1.0
	n := 0
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if a < -hyst {
			armed = true
		}
		if armed && a < 0 && b >= 0 {
			t := float64(i-1) + float64(-a)/float64(int(b)-int(a))
			if first < 0 {
				first = t
			}
			last = t
			n++
			armed = false
		}
	}
	if n < 2 || last <= first {
		return 0
	}
	return float64(n-1) * float64(rate) / (last - first)
}

// FindClicks returns the sample indices where clicks start: where the
// magnitude first reaches ClickThreshold, at least 50 ms after the previous
// click.
func FindClicks(samples []int16, rate int) []int {
	threshold := int(math.Round(ClickThreshold * 32767))
	refractory := rate / 20
	var clicks []int
	lastClick := -refractory
	for i, x := range samples {
		v := int(x)
		if v < 0 {
			v = -v
		}
		if v >= threshold && i-lastClick >= refractory {
			clicks = append(clicks, i)
			lastClick = i
		}
	}
	return clicks
}

// ClickThreshold is the magnitude, as a fraction of full scale, that
// FindClicks takes for a click: halfway between the default tone's peak
// and the click's.
const ClickThreshold = (DefaultLevel + ClickLevel) / 2
