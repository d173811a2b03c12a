package synth

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
)

func newVirtualMic(t testing.TB, cfg MicConfig) (*Mic, *VirtualClock) {
	t.Helper()
	clk := NewVirtualClock(epoch)
	cfg.Clock = clk
	m, err := NewMic(cfg)
	if err != nil {
		t.Fatalf("NewMic(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { m.Close() })
	return m, clk
}

// record reads d of audio and returns its samples.
func record(t testing.TB, m *Mic, d time.Duration) []int16 {
	t.Helper()
	var out []int16
	for range int(d / capture.ChunkDuration) {
		c, err := m.ReadChunk(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Samples...)
	}
	return out
}

func TestMicPacing(t *testing.T) {
	m, clk := newVirtualMic(t, MicConfig{})
	ctx := context.Background()
	for i := range 10 {
		c, err := m.ReadChunk(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := epoch.Add(time.Duration(i) * capture.ChunkDuration)
		if c.Seq != uint64(i) || !c.CaptureTime.Equal(start) || len(c.Samples) != 960 || c.Rate != 48000 {
			t.Fatalf("chunk %d: seq %d at %v, %d samples at %d Hz", i, c.Seq, c.CaptureTime.Sub(epoch), len(c.Samples), c.Rate)
		}
		// A chunk is handed out when its last sample has been "recorded".
		if now := clk.Now(); !now.Equal(start.Add(capture.ChunkDuration)) {
			t.Fatalf("chunk %d handed out at %v, want at its end %v", i, now.Sub(epoch), start.Add(capture.ChunkDuration).Sub(epoch))
		}
	}
	// 200 ms late: buffered, nothing is lost; the backlog comes at once.
	clk.Advance(200 * time.Millisecond)
	before := clk.Now()
	for i := 10; i < 20; i++ {
		c, err := m.ReadChunk(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Seq != uint64(i) {
			t.Fatalf("after 200 ms late: seq %d, want %d", c.Seq, i)
		}
	}
	if !clk.Now().Equal(before) {
		t.Fatal("the backlog was paced instead of handed out at once")
	}
	// 2 s late: more than the buffer holds; the oldest chunks are lost.
	clk.Advance(2 * time.Second)
	c, err := m.ReadChunk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Now is at the end of chunk 119; the buffer holds the newest 500 ms
	// (25 chunks) plus the chunk being read.
	if c.Seq != 119-25 {
		t.Fatalf("after 2 s late: seq %d, want %d", c.Seq, 119-25)
	}
}

func TestMicTone(t *testing.T) {
	for _, rate := range []int{48000, 44100, 16000, 8000} {
		m, _ := newVirtualMic(t, MicConfig{Rate: rate})
		s := record(t, m, 2*time.Second)
		if f := ToneFrequency(s, rate); math.Abs(f-1000) > 1 {
			t.Errorf("%d Hz: tone measures %.2f Hz, want 1000", rate, f)
		}
		if a := Goertzel(s, rate, 1000); math.Abs(a-DefaultLevel) > 0.01 {
			t.Errorf("%d Hz: 1 kHz amplitude %.3f, want %.3f", rate, a, DefaultLevel)
		}
		if a := Goertzel(s, rate, 1500); a > 0.01 {
			t.Errorf("%d Hz: 1.5 kHz amplitude %.3f, want ~0", rate, a)
		}
	}
}

func TestMicClicks(t *testing.T) {
	for _, every := range []time.Duration{time.Second, 300 * time.Millisecond} {
		m, _ := newVirtualMic(t, MicConfig{ClickEvery: every})
		s := record(t, m, 3*time.Second)
		clicks := FindClicks(s, 48000)
		period := int(every.Seconds() * 48000)
		// Clicks fall on multiples of the period of wall-clock time.
		into := epoch.UnixNano() % int64(every)
		// In int64: the nanoseconds times the rate overflow a 32-bit int
		// (armv7).
		first := int((int64(every) - into) % int64(every) * 48000 / int64(time.Second))
		if want := (len(s) - first + period - 1) / period; len(clicks) != want {
			t.Fatalf("every %v: %d clicks in 3 s, want %d", every, len(clicks), want)
		}
		for i, c := range clicks {
			if c != first+i*period {
				t.Fatalf("every %v: click %d at sample %d, want %d", every, i, c, first+i*period)
			}
		}
	}
}

// The tone and the clicks survive what the box does to audio on the wire:
// 48 kHz -> 8 kHz and G.711 mu-law.
func TestMicSurvivesPCMU(t *testing.T) {
	m, _ := newVirtualMic(t, MicConfig{})
	s := record(t, m, 3*time.Second)
	rs, err := pcmu.NewResampler(48000, 8000)
	if err != nil {
		t.Fatal(err)
	}
	narrow := append([]int16(nil), rs.Process(s)...)
	law := pcmu.Encode(make([]byte, len(narrow)), narrow)
	back := pcmu.Decode(make([]int16, len(law)), law)
	if f := ToneFrequency(back, 8000); math.Abs(f-1000) > 2 {
		t.Errorf("after PCMU the tone measures %.2f Hz", f)
	}
	if a := Goertzel(back, 8000, 1000); math.Abs(a-DefaultLevel) > 0.03 {
		t.Errorf("after PCMU the 1 kHz amplitude is %.3f", a)
	}
	clicks := FindClicks(back, 8000)
	if len(clicks) != 3 {
		t.Fatalf("after PCMU: %d clicks in 3 s, want 3", len(clicks))
	}
	for i := 1; i < len(clicks); i++ {
		if d := clicks[i] - clicks[i-1]; d < 7990 || d > 8010 {
			t.Fatalf("after PCMU clicks %d samples apart, want 8000", d)
		}
	}
}

func TestMicCloseAndCancel(t *testing.T) {
	m, err := NewMic(MicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.ReadChunk(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	m.Close()
	if _, err := m.ReadChunk(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

func TestMicBadConfig(t *testing.T) {
	for _, cfg := range []MicConfig{
		{Rate: 44101},
		{Rate: 4000},
		{Rate: 8000, ToneHz: 4000},
		{ToneHz: -1},
		{ToneHz: math.NaN()},
		{Level: 1.5},
		{Level: -0.1},
		{ClickEvery: time.Millisecond},
		{ClickEvery: time.Minute},
	} {
		if _, err := NewMic(cfg); err == nil {
			t.Errorf("NewMic(%+v) accepted a bad configuration", cfg)
		}
	}
}

func TestMicNoAllocs(t *testing.T) {
	m, _ := newVirtualMic(t, MicConfig{})
	ctx := context.Background()
	if _, err := m.ReadChunk(ctx); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := m.ReadChunk(ctx); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("ReadChunk allocates %v times per chunk", allocs)
	}
}

func TestAnalyzeEdgeCases(t *testing.T) {
	if f := ToneFrequency(nil, 8000); f != 0 {
		t.Errorf("ToneFrequency(nil) = %v", f)
	}
	if f := ToneFrequency(make([]int16, 100), 8000); f != 0 {
		t.Errorf("ToneFrequency(silence) = %v", f)
	}
	if a := Goertzel(nil, 8000, 1000); a != 0 {
		t.Errorf("Goertzel(nil) = %v", a)
	}
	if c := FindClicks(make([]int16, 8000), 8000); len(c) != 0 {
		t.Errorf("FindClicks(silence) = %v", c)
	}
	if r := RMS(nil); r != 0 {
		t.Errorf("RMS(nil) = %v", r)
	}
}

func BenchmarkMicChunk(b *testing.B) {
	m, _ := newVirtualMic(b, MicConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.ReadChunk(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
