package speaker

import (
	"math"
	"time"
)

// RingCadence is the ring tone's rhythm: two bursts, then a pause (the
// British double ring, which reads as "a phone is ringing" everywhere),
// repeated. The LED's ringing pattern keeps its own, slower rhythm.
var RingCadence = []RingStep{
	{On: true, For: 400 * time.Millisecond},
	{On: false, For: 200 * time.Millisecond},
	{On: true, For: 400 * time.Millisecond},
	{On: false, For: 2000 * time.Millisecond},
}

// RingStep is one step of a cadence.
type RingStep struct {
	On  bool
	For time.Duration
}

// Ring tone sound: two tones a beat apart (400 and 450 Hz, a warble like a
// telephone bell's), -12 dBFS peak, 10 ms fades so bursts start and stop
// without a click.
const (
	RingToneLow  = 400.0
	RingToneHigh = 450.0
	RingLevel    = 0.25 // peak, fraction of full scale (-12 dBFS)
	ringFade     = 10 * time.Millisecond
)

// Ring is the ring tone as a Generator: RingCadence, forever (until the
// mixer's stop). Not safe for concurrent use; the mixer calls Fill.
type Ring struct {
	n      int64 // samples generated
	period int64
}

// NewRing returns a ring tone starting with its first burst.
func NewRing() *Ring {
	var p time.Duration
	for _, s := range RingCadence {
		p += s.For
	}
	return &Ring{period: int64(p.Seconds() * Rate)}
}

// Fill implements Generator.
func (r *Ring) Fill(frame []int16) bool {
	fade := int64(ringFade.Seconds() * Rate)
	for i := range frame {
		pos := r.n % r.period
		var start int64
		v := 0.0
		for _, s := range RingCadence {
			l := int64(s.For.Seconds() * Rate)
			if pos < start+l {
				if s.On {
					// Envelope: linear fade in and out.
					e := min(float64(pos-start)/float64(fade), float64(start+l-pos)/float64(fade), 1)
					t := float64(r.n) / Rate
					v = e * RingLevel / 2 * (math.Sin(2*math.Pi*RingToneLow*t) + math.Sin(2*math.Pi*RingToneHigh*t))
				}
				break
			}
			start += l
		}
		frame[i] = int16(v * 32767)
		r.n++
	}
	return true
}
