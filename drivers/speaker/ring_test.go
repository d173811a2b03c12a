package speaker

import (
	"math"
	"testing"
	"time"
)

// The ring tone follows RingCadence: bursts and pauses of the right
// lengths (within a fade), at the right level, repeating.
func TestRingCadence(t *testing.T) {
	r := NewRing()
	var pcm []int16
	frame := make([]int16, FrameSamples)
	for range 300 { // 6 s: two whole periods of 3 s
		if !r.Fill(frame) {
			t.Fatal("the ring stopped by itself")
		}
		pcm = append(pcm, frame...)
	}
	// Loud or quiet per 5 ms (the two tones beat at 50 Hz: shorter
	// windows would see the beat's nulls as gaps): "on" when the peak is
	// above a tenth of the ring's level.
	const ms = Rate / 200
	var runs []RingStep
	peak := 0
	for i := 0; i+ms <= len(pcm); i += ms {
		p := 0
		for _, v := range pcm[i : i+ms] {
			p = max(p, int(math.Abs(float64(v))))
		}
		peak = max(peak, p)
		on := float64(p) > RingLevel*32767/10
		if len(runs) > 0 && runs[len(runs)-1].On == on {
			runs[len(runs)-1].For += 5 * time.Millisecond
		} else {
			runs = append(runs, RingStep{On: on, For: 5 * time.Millisecond})
		}
	}
	want := append(append([]RingStep(nil), RingCadence...), RingCadence...)
	if len(runs) != len(want) {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	for i, r := range runs {
		if r.On != want[i].On || absDur(r.For-want[i].For) > 10*time.Millisecond {
			t.Fatalf("step %d: %v, want %v (all: %v)", i, r, want[i], runs)
		}
	}
	if lvl := float64(peak) / 32767; lvl < RingLevel*0.9 || lvl > RingLevel*1.01 {
		t.Fatalf("peak %.3f, want about %.2f", lvl, RingLevel)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
