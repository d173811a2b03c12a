package speaker

import (
	"context"
	"math"
	"testing"
	"time"
)

// sine returns n samples of a sine at freq Hz and peak amp (of full scale),
// at rate, starting at sample offset.
func sine(n, rate int, freq, amp float64, offset int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * 32767 * math.Sin(2*math.Pi*freq*float64(offset+i)/float64(rate)))
	}
	return out
}

// constGen plays a constant for n frames.
type constGen struct {
	v int16
	n int
}

func (g *constGen) Fill(f []int16) bool {
	for i := range f {
		f[i] = g.v
	}
	g.n--
	return g.n > 0
}

// step runs one mixer frame without an output, returning the frame.
func step(m *Mixer) []int16 {
	frame := make([]int16, FrameSamples)
	active := m.mix(make([]int32, FrameSamples), make([]int16, FrameSamples), frame)
	m.measure(frame, active)
	m.far.push(frame, time.Now())
	return frame
}

func TestMixerSumsAndClips(t *testing.T) {
	m := NewMixer(MixerConfig{Device: "test"})
	a, b := m.Stream("call"), m.Stream("ptt")
	for range 2 { // prebuffer: 40 ms
		a.Write(constFrame(1000), Rate)
		b.Write(constFrame(32000), Rate)
	}
	stop, done := m.Play("ring", &constGen{v: 500, n: 3})
	defer stop()
	f := step(m)
	if f[0] != math.MaxInt16 || f[FrameSamples-1] != math.MaxInt16 {
		t.Fatalf("1000+32000+500 = %d, want clipped to %d", f[0], math.MaxInt16)
	}
	st := m.State()
	if !st.Playing || st.Frames != 1 || len(st.Sources) != 3 {
		t.Fatalf("state %+v", st)
	}
	b.Close()
	if f := step(m); f[0] != 1500 {
		t.Fatalf("after ptt closed: %d, want 1500", f[0])
	}
	// a is empty now: an underrun, and only the ring plays.
	if f := step(m); f[0] != 500 {
		t.Fatalf("ring alone: %d, want 500", f[0])
	}
	select {
	case <-done:
	default:
		t.Fatal("the ring's 3 frames are over but done is open")
	}
	if f := step(m); f[0] != 0 || m.State().Playing {
		t.Fatalf("nothing left: %d playing %v", f[0], m.State().Playing)
	}
	if st := m.State(); st.Underruns != 1 || st.Frames != 3 {
		t.Fatalf("underruns %d frames %d, want 1 and 3", st.Underruns, st.Frames)
	}
}

func constFrame(v int16) []int16 {
	f := make([]int16, FrameSamples)
	for i := range f {
		f[i] = v
	}
	return f
}

func TestStreamPrebufferAndOverflow(t *testing.T) {
	m := NewMixer(MixerConfig{})
	s := m.Stream("call")
	s.Write(constFrame(7), Rate)
	if f := step(m); f[0] != 0 {
		t.Fatal("one frame queued played before the prebuffer filled")
	}
	s.Write(constFrame(7), Rate)
	if f := step(m); f[0] != 7 {
		t.Fatal("prebuffered stream did not play")
	}
	for range 20 {
		s.Write(constFrame(9), Rate)
	}
	if q := s.Queued(); q != 200*time.Millisecond {
		t.Fatalf("queued %v, want capped at 200ms", q)
	}
	if d := m.State().Dropped; d != uint64(11*FrameSamples) {
		t.Fatalf("dropped %d samples, want %d", d, 11*FrameSamples)
	}
	if f := step(m); f[0] != 9 {
		t.Fatal("the newest audio was not kept")
	}
	if err := s.Close(); err != nil || s.Write(constFrame(1), Rate) != ErrClosed {
		t.Fatal("write after close accepted")
	}
}

// A 1 kHz tone at 8 kHz (a PCMU call) comes out at 48 kHz at the same
// frequency and level.
func TestStreamResamples(t *testing.T) {
	m := NewMixer(MixerConfig{})
	s := m.Stream("call")
	const amp = 0.5
	for i := range 20 {
		if err := s.Write(sine(160, 8000, 1000, amp, i*160), 8000); err != nil {
			t.Fatal(err)
		}
		step(m)
	}
	// Half a second of a sine of peak 0.5: RMS 0.354, -9.0 dBFS (the
	// first frames' filter start-up lowers it a little).
	lvl := m.State().LevelDBFS
	if lvl < -10.5 || lvl > -8.5 {
		t.Fatalf("level %.1f dBFS, want about -9.0", lvl)
	}
	if err := s.Write(make([]int16, 7), 44100+1); err == nil {
		t.Fatal("an odd rate was accepted")
	}
}

func TestMixerVolume(t *testing.T) {
	m := NewMixer(MixerConfig{Volume: 0.5})
	m.Play("ring", &constGen{v: 1000, n: 5})
	if f := step(m); f[0] != 500 {
		t.Fatalf("volume 0.5: %d, want 500", f[0])
	}
}

// Run paces frames on the simulated speaker and records what it played.
func TestRunOnSim(t *testing.T) {
	sim := NewSim()
	m := NewMixer(MixerConfig{Output: sim, Device: "synthetic"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	_, played := m.Play("ring", &constGen{v: 1234, n: 10})
	select {
	case <-played:
	case <-time.After(10 * time.Second):
		t.Fatal("10 frames not played in 10 s")
	}
	cancel()
	<-done
	c := sim.Counts()
	if c.SoundFrames != 10 || c.Peak != 1234 {
		t.Fatalf("sim counts %+v, want 10 sound frames at 1234", c)
	}
	rec := sim.Recorded(10 * time.Second)
	n := 0
	for _, v := range rec {
		if v == 1234 {
			n++
		}
	}
	if n != 10*FrameSamples {
		t.Fatalf("recorded %d samples of the ring, want %d", n, 10*FrameSamples)
	}
	if sim.Write(constFrame(1)) != ErrClosed {
		t.Fatal("Run did not close its output")
	}
}

// FarEnd hands out what was played, sample-exactly and continuously, from
// the time asked.
func TestFarEndAlignment(t *testing.T) {
	var f farEnd
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		fr := make([]int16, FrameSamples)
		for j := range fr {
			fr[j] = int16(i*FrameSamples + j)
		}
		f.push(fr, t0.Add(time.Duration(i)*FrameDuration))
	}
	r := &FarEnd{f: &f}
	dst := make([]int16, 480)
	// Sample 1000 left the speaker at t0 + 1000/48000 s.
	at := t0.Add(time.Duration(1000) * time.Second / Rate)
	if !r.Read(dst, at) || dst[0] != 1000 || dst[479] != 1479 {
		t.Fatalf("first read: resync and samples from 1000, got %d..%d", dst[0], dst[479])
	}
	// A timestamp 5 ms off (jitter) does not move the reader.
	if r.Read(dst, at.Add(15*time.Millisecond)) || dst[0] != 1480 {
		t.Fatalf("jittered read moved: %d", dst[0])
	}
	// Beyond what was written: silence.
	r.next = uint64(9*FrameSamples + 900)
	r.Read(dst, t0.Add(time.Duration(r.next)*time.Second/Rate))
	if int(dst[59]) != 9*FrameSamples+959 || dst[60] != 0 || dst[479] != 0 {
		t.Fatalf("past the head: %d %d", dst[59], dst[60])
	}
	// 300 ms off once (a late reader): not moved. 300 ms off for most
	// of a second: locked afresh, by the median.
	r.next = 1000
	if r.Read(dst, at.Add(300*time.Millisecond)) || r.next != 1480 {
		t.Fatal("one late timestamp moved the alignment")
	}
	n := 0
	for i := 0; i < resyncVotes && !r.Read(dst, at.Add(time.Duration(1+i)*10*time.Millisecond+300*time.Millisecond)); i++ {
		n++
	}
	if r.Resyncs != 2 || n < resyncVotes/2-1 || n >= resyncVotes {
		t.Fatalf("a lasting 300 ms misalignment: resyncs %d after %d reads", r.Resyncs, n)
	}
	// 100 ms off for long: the sample count wins (timestamps drift).
	base := r.next
	for i := range 2 * resyncVotes {
		if r.Read(dst, t0.Add(time.Duration(base+uint64(i*480))*time.Second/Rate+100*time.Millisecond)) {
			t.Fatal("a 100 ms timestamp drift moved the alignment")
		}
	}
	// The microphone lost samples: Realign locks by the next timestamp.
	r.Realign()
	if !r.Read(dst, at) || dst[0] != 1000 {
		t.Fatalf("after Realign: %d, want 1000", dst[0])
	}
	// The output restarted (its times jumped): the reader relocks.
	f.push(make([]int16, FrameSamples), t0.Add(time.Hour))
	if !r.Read(dst, t0.Add(time.Hour)) || r.next != uint64(10*FrameSamples+480) {
		t.Fatalf("after the output's restart: next %d", r.next)
	}
}
