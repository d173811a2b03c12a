package mic_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/drivers/mic"
	"github.com/callbox/callbox/drivers/mic/mictest"
)

func TestChunksCarryTheTone(t *testing.T) {
	for _, rate := range []int{48000, 16000, 8000} {
		b := mictest.NewBackend(1000, 8000)
		m, err := mic.Open(mic.Config{Rate: rate, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		var all []int16
		for i := 1; i <= 50; i++ {
			c, err := m.ReadChunk(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Samples) != rate/50 || c.Rate != rate || c.Seq != uint64(i) || c.CaptureTime.IsZero() {
				t.Fatalf("rate %d chunk %d: %d samples, rate %d, seq %d", rate, i, len(c.Samples), c.Rate, c.Seq)
			}
			all = append(all, c.Samples...)
		}
		f, rms := mictest.Analyze(all, rate)
		if math.Abs(f-1000) > 2 || math.Abs(rms-8000/math.Sqrt2) > 50 {
			t.Fatalf("rate %d: %.1f Hz rms %.0f, want 1000 Hz rms %.0f", rate, f, rms, 8000/math.Sqrt2)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, open := b.Stats(); open != 0 {
			t.Fatalf("%d streams left open", open)
		}
	}
}

func TestOverflowIsAGlitch(t *testing.T) {
	b := mictest.NewBackend(440, 1000)
	b.OverflowAt(3)
	m, err := mic.Open(mic.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var seqs []uint64
	for i := 0; i < 4; i++ {
		c, err := m.ReadChunk(context.Background())
		if err != nil {
			t.Fatalf("overflow was fatal: %v", err)
		}
		seqs = append(seqs, c.Seq)
	}
	if m.Glitches() != 1 {
		t.Fatalf("glitches %d", m.Glitches())
	}
	if seqs[2] != seqs[1]+2 || seqs[3] != seqs[2]+1 {
		t.Fatalf("seqs %v: the overflow should leave one gap", seqs)
	}
}

func TestDeviceErrorReopensWithBackoff(t *testing.T) {
	b := mictest.NewBackend(440, 1000)
	m, err := mic.Open(mic.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if _, err := m.ReadChunk(ctx); err != nil {
		t.Fatal(err)
	}
	b.Unplug()
	start := time.Now()
	for i := 0; i < 4; i++ {
		if _, err := m.ReadChunk(ctx); !errors.Is(err, capture.ErrDeviceGone) {
			t.Fatalf("read %d while unplugged: %v", i, err)
		}
	}
	// Backoff 100, 200, 400 ms between the three reopen attempts.
	if el := time.Since(start); el < 600*time.Millisecond {
		t.Fatalf("4 failing reads took %v: no backoff", el)
	}
	if !m.Gone() {
		t.Fatal("Gone() false while unplugged")
	}
	opens, _ := b.Stats()
	b.Plug()
	var c capture.AudioChunk
	for {
		c, err = m.ReadChunk(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, capture.ErrDeviceGone) || time.Since(start) > 5*time.Second {
			t.Fatalf("not back: %v", err)
		}
	}
	if n, open := b.Stats(); n <= opens || open != 1 || m.Reopens() != 1 || m.Gone() {
		t.Fatalf("opens %d->%d, open streams %d, reopens %d", opens, n, open, m.Reopens())
	}
	if c.Seq != 2 {
		t.Fatalf("seq %d after reopen", c.Seq)
	}
}

func TestCtxCancelDuringBackoff(t *testing.T) {
	b := mictest.NewBackend(440, 1000)
	m, err := mic.Open(mic.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b.Unplug()
	m.ReadChunk(context.Background()) // fails, schedules a reopen
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.ReadChunk(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	b := mictest.NewBackend(440, 1000)
	if _, err := mic.Open(mic.Config{Rate: 44100, Backend: b}); err == nil {
		t.Fatal("unsupported rate 44100 accepted")
	}
	if _, err := mic.Open(mic.Config{Device: "nonexistent", Backend: b}); !errors.Is(err, mic.ErrNoDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	m, err := mic.Open(mic.Config{Device: "auto", Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := m.ReadChunk(context.Background()); !errors.Is(err, mic.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestReadChunkDoesNotAllocate(t *testing.T) {
	m, err := mic.Open(mic.Config{Backend: mictest.NewBackend(440, 1000)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if a := testing.AllocsPerRun(100, func() { m.ReadChunk(ctx) }); a != 0 {
		t.Fatalf("%v allocations per chunk", a)
	}
}

func TestAnalyze(t *testing.T) {
	if f, rms := mictest.Analyze(nil, 48000); f != 0 || rms != 0 {
		t.Fatal("empty input")
	}
	silence := make([]int16, 4800)
	if f, rms := mictest.Analyze(silence, 48000); f != 0 || rms != 0 {
		t.Fatalf("silence: %v %v", f, rms)
	}
}

func TestCloseDuringBackoff(t *testing.T) {
	b := mictest.NewBackend(440, 1000)
	m, err := mic.Open(mic.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	b.Unplug()
	ctx := context.Background()
	for i := 0; i < 5; i++ { // grow the backoff to 1.6 s
		m.ReadChunk(ctx)
	}
	errc := make(chan error)
	go func() { _, err := m.ReadChunk(ctx); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, mic.ErrClosed) {
		t.Fatalf("read during Close: %v", err)
	}
	if el := time.Since(t0); el > 500*time.Millisecond {
		t.Fatalf("Close waited %v for the backoff", el)
	}
}
