package firmware

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/callbox/callbox/drivers/speaker"
)

// toneLevel is the RMS level (dBFS) of x's component at freq Hz
// (Goertzel), as if x held that sine alone.
func toneLevel(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / speaker.Rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v)/32768 + c*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	amp := 2 * math.Sqrt(p) / float64(len(x))
	return 20 * math.Log10(amp/math.Sqrt2)
}

func simSpeaker(t *testing.T, b *callBox) *speaker.Sim {
	t.Helper()
	sim, ok := b.a.speaker.opened.Output.(*speaker.Sim)
	if !ok {
		t.Fatalf("box's speaker is %T, want the simulated one", b.a.speaker.opened.Output)
	}
	return sim
}

// speakerRings: a ringing box plays the ring tone on its (simulated)
// speaker: /api/state says so, and what the speaker got has the tone's
// 400 and 450 Hz in bursts of 400 ms, with silence between.
func speakerRings(t *testing.T, b *callBox) {
	t.Helper()
	sim := simSpeaker(t, b)
	waitFor(t, 10*time.Second, "box B's speaker plays the ring for 3 s", func() bool {
		st := b.state(t, "").Speaker
		return st != nil && slices.Contains(st.Sources, "ring") && st.Frames >= 150
	})
	st := b.state(t, "").Speaker
	if st.Device != "synthetic" || !st.Playing {
		t.Errorf("speaker state while ringing: %+v", st)
	}
	rec := sim.Recorded(3 * time.Second) // one whole cadence
	const ms = speaker.Rate / 1000
	loud, quiet := 0, 0
	for i := 0; i+10*ms <= len(rec); i += 10 * ms {
		p := 0
		for _, v := range rec[i : i+10*ms] {
			p = max(p, int(math.Abs(float64(v))))
		}
		if float64(p) > speaker.RingLevel*32767/2 {
			loud++
		} else if p == 0 {
			quiet++
		}
	}
	// 800 ms of bursts and 2200 ms of silence in 3 s (10 ms windows,
	// give or take the window at each edge).
	if loud < 70 || loud > 85 || quiet < 200 {
		t.Errorf("the speaker's last 3 s: %d loud and %d silent 10 ms windows, want about 80 and 220", loud, quiet)
	}
	lo, hi := toneLevel(rec, speaker.RingToneLow), toneLevel(rec, speaker.RingToneHigh)
	t.Logf("ringing: speaker state %+v; last 3 s: %d loud, %d silent 10 ms windows; 400 Hz %.1f dBFS, 450 Hz %.1f dBFS", *st, loud, quiet, lo, hi)
	if lo < -35 || hi < -35 {
		t.Errorf("ring tones at %.1f and %.1f dBFS, want both well above -35", lo, hi)
	}
}

// speakerPlaysCall: in the call, the ring has stopped and the other box's
// sound (its synthetic microphone: a 1 kHz tone, -13.5 dBFS RMS, and a
// click a second) plays on the speaker.
func speakerPlaysCall(t *testing.T, b *callBox) {
	t.Helper()
	sim := simSpeaker(t, b)
	var st *speakerAPIState
	waitFor(t, 10*time.Second, "box B's speaker plays the call's audio (1 s of it)", func() bool {
		st = b.state(t, "").Speaker
		return st != nil && slices.Equal(st.Sources, []string{"call"}) && st.LevelDBFS > -20
	})
	rec := sim.Recorded(500 * time.Millisecond)
	// The median over 10 ms windows (ten whole periods each): a chunk lost
	// or repeated on the way shifts the phase, which a Goertzel over the
	// whole half second would count as a weaker tone.
	var levels []float64
	for i := 0; i+480 <= len(rec); i += 480 {
		levels = append(levels, toneLevel(rec[i:i+480], 1000))
	}
	slices.Sort(levels)
	tone := levels[len(levels)/2]
	t.Logf("in the call: speaker state %+v; 1 kHz at %.1f dBFS (median of 10 ms windows over the last 0.5 s; whole: %.1f)", *st, tone, toneLevel(rec, 1000))
	if tone < -17 || tone > -10 {
		t.Errorf("the other box's 1 kHz tone at %.1f dBFS on the speaker, want about -13.5", tone)
	}
	if st.Undecodable != 0 {
		t.Errorf("%d call audio packets undecodable", st.Undecodable)
	}
	// The box's microphone passes the echo canceller, whose reference is
	// what the speaker plays.
	if e := st.Echo; e.Mode != "software" || e.StageStats == nil || e.Chunks < 100 || e.Passthrough != 0 {
		t.Errorf("echo cancellation in the call: %+v %+v", e.echoChoice, e.StageStats)
	}
}

// echo_cancel resolves by the speaker: known speakerphones cancel their
// own echo, a simulated or missing speaker needs nothing, any other real
// speaker gets speexdsp; an explicit setting wins.
func TestChooseEcho(t *testing.T) {
	sim := speaker.Opened{Output: speaker.NewSim(), Device: "synthetic"}
	real := func(name string) speaker.Opened {
		return speaker.Opened{Output: speaker.NewSim(), Device: name, CardName: name}
	}
	for _, c := range []struct {
		mode string
		o    speaker.Opened
		want string
	}{
		{"auto", speaker.Opened{Device: "none"}, "off"},
		{"auto", sim, "off"},
		{"auto", real("bcm2835 Headphones: - (hw:0,0)"), "software"},
		{"auto", real("Jabra SPEAK 510 USB: Audio (hw:1,0)"), "hardware"},
		{"auto", real("Anker PowerConf: USB Audio (hw:2,0)"), "hardware"},
		{"auto", real("ReSpeaker 4 Mic Array (UAC1.0): USB Audio (hw:1,0)"), "hardware"},
		{"software", real("Jabra SPEAK 510 USB: Audio (hw:1,0)"), "software"},
		{"software", sim, "software"},
		{"hardware", real("USB Audio Device: - (hw:1,0)"), "hardware"},
		{"off", real("USB Audio Device: - (hw:1,0)"), "off"},
	} {
		got := chooseEcho(c.mode, c.o)
		if got.Mode != c.want {
			t.Errorf("echo_cancel %s with %q: %+v, want %s", c.mode, c.o.CardName, got, c.want)
		}
	}
}
