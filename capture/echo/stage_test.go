//go:build cgo && !nospeex

package echo

import (
	"context"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/echo/echotest"
)

// timedRef is a Reference over a whole far-end signal that started
// playing at t0.
type timedRef struct {
	far  []int16
	t0   time.Time
	next int
	ats  []time.Time
}

func (r *timedRef) Read(dst []int16, at time.Time) bool {
	r.ats = append(r.ats, at)
	first := len(r.ats) == 1
	if first {
		r.next = int(at.Sub(r.t0).Seconds() * rate)
	}
	for i := range dst {
		if j := r.next + i; j >= 0 && j < len(r.far) {
			dst[i] = r.far[j]
		} else {
			dst[i] = 0
		}
	}
	r.next += len(dst)
	return first
}

// chunks is a microphone replaying a recording.
type chunks struct {
	mic []int16
	t0  time.Time
	pos int
}

func (c *chunks) ReadChunk(context.Context) (capture.AudioChunk, error) {
	const n = rate / 50
	if c.pos+n > len(c.mic) {
		return capture.AudioChunk{}, context.Canceled
	}
	ch := capture.AudioChunk{Samples: c.mic[c.pos : c.pos+n], Rate: rate,
		CaptureTime: c.t0.Add(time.Duration(c.pos) * time.Second / rate), Seq: uint64(c.pos / n)}
	c.pos += n
	return ch, nil
}
func (c *chunks) Close() error { return nil }

// The stage reads the reference DefaultLead ahead of each chunk's capture
// time, so the echo lags it by the room's delay plus the lead, and cancels.
// runStage runs s through a Stage (48 kHz in and out), the reference
// read as the firmware reads it.
func runStage(t testing.TB, cfg Config, s scene) ([]int16, *Stage) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t0 := time.Unix(5000, 0)
	ref := &timedRef{far: s.far, t0: t0}
	st, err := NewStage(StageConfig{Canceller: c, Far: ref})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	src := st.Wrap(&chunks{mic: s.mic, t0: t0})
	var out []int16
	for {
		ch, err := src.ReadChunk(context.Background())
		if err != nil {
			break
		}
		out = append(out, ch.Samples...)
	}
	if got := ref.ats[0].Sub(t0); got != DefaultLead {
		t.Fatalf("reference read %v after the chunk's capture time, want %v", got, DefaultLead)
	}
	return out, st
}

func TestStageCancels(t *testing.T) {
	s := roomScene()
	out, st := runStage(t, Config{}, s)
	t0 := time.Unix(5000, 0)
	erle := echotest.ERLE(s.mic, out, 4*rate, s.dtFrom)
	stats := st.Stats()
	var per []float64
	for sec := 0; (sec+1)*rate <= s.dtFrom; sec++ {
		per = append(per, echotest.ERLE(s.mic, out, sec*rate, (sec+1)*rate))
	}
	t.Logf("ERLE %.1f dB (per second %.0f), stage %+v", erle, per, stats)
	if erle < 25 {
		t.Fatalf("ERLE %.1f dB through the stage, want >= 25", erle)
	}
	if stats.Chunks != uint64(len(s.mic)/(rate/50)) || stats.Passthrough != 0 || stats.Resyncs != 0 {
		t.Fatalf("stats %+v", stats)
	}
	// The filter found the room's 30 ms plus the lead.
	// (The resamplers delay both signals alike.)
	if stats.DelayMS < 48 || stats.DelayMS > 53 {
		t.Fatalf("delay %.1f ms, want about 50", stats.DelayMS)
	}
	// The last 2 s the far end played include the double talk: the near
	// end's speech leaves the canceller, so the reduction is small but
	// there.
	if stats.ReductionDB < 3 {
		t.Fatalf("reduction %.1f dB", stats.ReductionDB)
	}
	// Another rate passes through, counted.
	odd := &chunks{mic: make([]int16, 8000), t0: t0}
	src := st.Wrap(oddRate{odd})
	if _, err := src.ReadChunk(context.Background()); err != nil || st.Stats().Passthrough != 1 {
		t.Fatalf("16 kHz chunk: %v, %+v", err, st.Stats())
	}
}

type oddRate struct{ *chunks }

func (o oddRate) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	c, err := o.chunks.ReadChunk(ctx)
	c.Rate = 16000
	c.Samples = c.Samples[:320]
	return c, err
}

// BenchmarkStage is the appliance's cost per 20 ms microphone chunk: the
// 48 kHz chunk and its reference resampled to 16 kHz, cancelled
// (speexdsp, 200 ms tail, the preprocessor), resampled back. ratio_rt is
// that as a fraction of real time on one core.
func BenchmarkStage(b *testing.B) {
	s := makeScene(room, rate, 2*time.Second, 0)
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	t0 := time.Unix(5000, 0)
	st, err := NewStage(StageConfig{Canceller: c, Far: &loopRef{far: s.far}})
	if err != nil {
		b.Fatal(err)
	}
	src := st.Wrap(&loopMic{mic: s.mic, t0: t0})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := src.ReadChunk(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N)/0.020, "ratio_rt")
}

// loopMic and loopRef repeat a recording forever.
type loopMic struct {
	mic []int16
	t0  time.Time
	pos int
}

func (l *loopMic) ReadChunk(context.Context) (capture.AudioChunk, error) {
	const n = rate / 50
	if l.pos+n > len(l.mic) {
		l.pos = 0
	}
	c := capture.AudioChunk{Samples: l.mic[l.pos : l.pos+n], Rate: rate, CaptureTime: l.t0}
	l.pos += n
	return c, nil
}
func (l *loopMic) Close() error { return nil }

type loopRef struct {
	far []int16
	pos int
}

func (l *loopRef) Read(dst []int16, _ time.Time) bool {
	if l.pos+len(dst) > len(l.far) {
		l.pos = 0
	}
	copy(dst, l.far[l.pos:])
	l.pos += len(dst)
	return false
}

func (r *timedRef) Realign() {}
func (l *loopRef) Realign()  {}
