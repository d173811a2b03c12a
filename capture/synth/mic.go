package synth

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
)

// Microphone defaults.
const (
	DefaultRate       = 48000
	DefaultToneHz     = 1000 // well inside PCMU's 300-3400 Hz band
	DefaultLevel      = 0.3  // tone amplitude, fraction of full scale (about -10 dBFS)
	DefaultClickEvery = time.Second

	// ClickLength is how long each click lasts: one millisecond of a
	// negative pulse at ClickLevel. That is loud and sharp, unmistakable by
	// ear and, at three times the tone's amplitude, by a threshold; it
	// replaces one whole period of the default tone, so it hardly moves the
	// tone's measured frequency.
	ClickLength = time.Millisecond
	ClickLevel  = 0.9
)

// maxBehind is how far a reader may fall behind before chunks are lost,
// like a capture device's ring buffer overflowing.
const maxBehind = 500 * time.Millisecond

// MicConfig configures a Mic. Zero fields take the defaults.
type MicConfig struct {
	Rate       int           // samples per second; a multiple of 50 (whole 20 ms chunks), 8000..192000
	ToneHz     float64       // tone frequency; below Rate/2
	Level      float64       // tone amplitude as a fraction of full scale, 0 < Level <= 1
	ClickEvery time.Duration // click period, 100 ms .. 10 s; clicks fall on its multiples of wall-clock time
	Clock      Clock         // paces the chunks; SystemClock when nil
}

func (c *MicConfig) fill() {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ToneHz == 0 {
		c.ToneHz = DefaultToneHz
	}
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	if c.ClickEvery == 0 {
		c.ClickEvery = DefaultClickEvery
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
}

// Mic is the synthetic microphone. It implements capture.AudioSource.
// ReadChunk is meant for one goroutine; Close may be called from any.
type Mic struct {
	cfg      MicConfig
	chunkLen int     // samples per chunk
	cycle    []int16 // one click period of signal, computed at start-up
	offset   uint64  // position in cycle of the first sample
	out      []int16

	timer   Timer
	started bool
	start   time.Time
	next    uint64

	closeOnce sync.Once
	closed    chan struct{}
}

var _ capture.AudioSource = (*Mic)(nil)

// NewMic validates cfg and computes one click period of signal.
func NewMic(cfg MicConfig) (*Mic, error) {
	cfg.fill()
	if cfg.Rate < 8000 || cfg.Rate > 192000 || cfg.Rate%50 != 0 {
		return nil, fmt.Errorf("synth: sample rate %d: need a multiple of 50 in 8000..192000", cfg.Rate)
	}
	if cfg.ToneHz <= 0 || cfg.ToneHz >= float64(cfg.Rate)/2 || math.IsNaN(cfg.ToneHz) {
		return nil, fmt.Errorf("synth: tone %g Hz: need 0 < tone < %d", cfg.ToneHz, cfg.Rate/2)
	}
	if !(cfg.Level > 0 && cfg.Level <= 1) {
		return nil, fmt.Errorf("synth: level %g: need 0 < level <= 1", cfg.Level)
	}
	if cfg.ClickEvery < 100*time.Millisecond || cfg.ClickEvery > 10*time.Second {
		return nil, fmt.Errorf("synth: click period %v out of range 100ms..10s", cfg.ClickEvery)
	}
	m := &Mic{
		cfg:      cfg,
		chunkLen: cfg.Rate / 50,
		closed:   make(chan struct{}),
	}
	m.out = make([]int16, m.chunkLen)
	m.cycle = synthCycle(cfg)
	return m, nil
}

// synthCycle returns one click period: the tone, with a click at its start.
// When the tone has no whole number of periods in a click period its phase
// jumps at the wrap, which the click hides.
func synthCycle(cfg MicConfig) []int16 {
	n := int(int64(cfg.ClickEvery) * int64(cfg.Rate) / int64(time.Second))
	click := int(int64(ClickLength) * int64(cfg.Rate) / int64(time.Second))
	s := make([]int16, n)
	for i := range s {
		v := cfg.Level * math.Sin(2*math.Pi*cfg.ToneHz*float64(i)/float64(cfg.Rate))
		if i < click {
			v = -ClickLevel
		}
		s[i] = int16(math.Round(v * 32767))
	}
	return s
}

// Rate returns the sample rate.
func (m *Mic) Rate() int { return m.cfg.Rate }

// ReadChunk waits until the next 20 ms chunk is complete and returns it. A
// reader less than maxBehind late gets every chunk in order (the signal is
// buffered, as in a sound card); one later than that loses the oldest
// chunks, which shows as a gap in Seq.
func (m *Mic) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	select {
	case <-m.closed:
		return capture.AudioChunk{}, ErrClosed
	default:
	}
	now := m.cfg.Clock.Now()
	if !m.started {
		m.started, m.start = true, now
		// Clicks fall on whole multiples of ClickEvery of the wall clock
		// (whole seconds by default), whenever the microphone started.
		into := now.UnixNano() % int64(m.cfg.ClickEvery)
		if into < 0 {
			into += int64(m.cfg.ClickEvery)
		}
		m.offset = uint64(math.Round(float64(into) * float64(m.cfg.Rate) / 1e9))
	}
	// Chunk k holds the signal of [start + k*20ms, start + (k+1)*20ms) and
	// is complete at the end of that span.
	ready := m.start.Add(time.Duration(m.next+1) * capture.ChunkDuration)
	if wait := ready.Sub(now); wait > 0 {
		if m.timer == nil {
			m.timer = m.cfg.Clock.NewTimer(wait)
		} else {
			m.timer.Reset(wait)
		}
		select {
		case <-m.timer.C():
		case <-ctx.Done():
			m.timer.Stop()
			return capture.AudioChunk{}, fmt.Errorf("synth mic: %w", ctx.Err())
		case <-m.closed:
			m.timer.Stop()
			return capture.AudioChunk{}, ErrClosed
		}
		now = m.cfg.Clock.Now()
	}
	seq := m.next
	if late := now.Sub(ready); late > maxBehind {
		seq += uint64((late - maxBehind) / capture.ChunkDuration)
	}
	m.next = seq + 1
	pos := int((m.offset + seq*uint64(m.chunkLen)) % uint64(len(m.cycle)))
	for i := 0; i < m.chunkLen; {
		n := copy(m.out[i:], m.cycle[pos:])
		i += n
		pos = 0
	}
	// The first sample's time, counted back from now so that it stays
	// right even if the wall clock was stepped since the start.
	first := m.start.Add(time.Duration(seq) * capture.ChunkDuration)
	return capture.AudioChunk{
		Samples:     m.out,
		Rate:        m.cfg.Rate,
		CaptureTime: now.Add(-now.Sub(first)),
		Seq:         seq,
	}, nil
}

// Close stops the microphone; a blocked ReadChunk returns ErrClosed.
func (m *Mic) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	return nil
}
