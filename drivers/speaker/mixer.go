package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture/pcmu"
)

// Generator is a source the mixer pulls: Fill writes the next frame
// (FrameSamples at Rate) into frame and reports whether there is more; it
// runs on the mixer's goroutine and must not block.
type Generator interface {
	Fill(frame []int16) (more bool)
}

// SilenceDBFS is what State.LevelDBFS says for digital silence.
const SilenceDBFS = -100.0

// levelWindow is the span State.LevelDBFS averages over.
const levelWindow = 25 // frames: half a second

// MixerConfig sets up a Mixer.
type MixerConfig struct {
	// Output is the speaker; nil means none: the mixer still runs (paced
	// by the clock, like the simulated speaker) so producers never block,
	// and nothing is heard.
	Output Output
	// Device describes the output for /api/state ("synthetic", "none",
	// an ALSA name).
	Device string
	// Volume scales everything, 0..1; 0 means 1 (full).
	Volume float64
	Log    *slog.Logger
}

// State is what the speaker is doing, for /api/state and tests.
type State struct {
	Device  string   `json:"device"`
	Playing bool     `json:"playing"` // some source has sound queued or is generating
	Sources []string `json:"sources,omitempty"`
	// Frames counts frames written while some source played (not the
	// silence between).
	Frames uint64 `json:"frames"`
	// LevelDBFS is the RMS level of the last half second written, dB
	// relative to full scale; SilenceDBFS for silence.
	LevelDBFS float64 `json:"level_dbfs"`
	// Underruns counts frames a stream had too little queued for (the
	// network was late): that stream played silence for a while.
	Underruns uint64 `json:"underruns"`
	// Dropped counts samples streams discarded because too much was
	// queued (the producer ran ahead of the speaker's clock).
	Dropped uint64 `json:"dropped"`
	// Errors counts failed writes to the output.
	Errors uint64 `json:"errors"`
}

// Mixer sums its sources into the Output. Create it with NewMixer, start
// it with Run.
type Mixer struct {
	cfg  MixerConfig
	gain float64

	mu      sync.Mutex
	streams []*Stream
	gens    []*playing

	frames     atomic.Uint64
	underruns  atomic.Uint64
	dropped    atomic.Uint64
	errors     atomic.Uint64
	playingNow atomic.Bool
	levelBits  atomic.Uint64 // float64 dBFS

	energy [levelWindow]float64 // per frame: sum of squares (normalised)
	ei     int

	far farEnd
}

type playing struct {
	name string
	g    Generator
	done chan struct{}
}

// NewMixer returns a mixer writing to cfg.Output. It does not start it.
func NewMixer(cfg MixerConfig) *Mixer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Device == "" {
		cfg.Device = "none"
	}
	m := &Mixer{cfg: cfg, gain: cfg.Volume}
	if m.gain <= 0 || m.gain > 1 {
		m.gain = 1
	}
	m.levelBits.Store(math.Float64bits(SilenceDBFS))
	return m
}

// Run mixes and writes frames until ctx is done, then closes the Output.
// Without an Output it keeps the clock alone.
func (m *Mixer) Run(ctx context.Context) {
	out := m.cfg.Output
	if out == nil {
		out = &clockOutput{}
	}
	defer out.Close()
	// An output that reports what it plays feeds the far end itself, with
	// the silence it plays when the mixer is late and the device's own
	// times: the reference is then the device's sample stream exactly.
	tapped := false
	if po, ok := out.(playedOutput); ok {
		po.OnPlayed(m.far.push)
		tapped = true
	}
	frame := make([]int16, FrameSamples)
	acc := make([]int32, FrameSamples)
	tmp := make([]int16, FrameSamples)
	var lastErr time.Time
	for ctx.Err() == nil {
		active := m.mix(acc, tmp, frame)
		m.measure(frame, active)
		if !tapped {
			m.far.push(frame, time.Now().Add(out.Latency()))
		}
		if err := out.Write(frame); err != nil {
			m.errors.Add(1)
			if time.Since(lastErr) > 10*time.Second {
				m.cfg.Log.Warn("speaker write failed", "err", err)
				lastErr = time.Now()
			}
			// A failed device returns at once: do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(FrameDuration):
			}
		}
	}
	m.mu.Lock()
	for _, p := range m.gens {
		close(p.done)
	}
	m.gens = nil
	m.mu.Unlock()
}

// mix fills frame with the sum of every source; it reports whether any
// source contributed.
func (m *Mixer) mix(acc []int32, tmp, frame []int16) bool {
	clear(acc)
	active := false
	m.mu.Lock()
	for _, s := range m.streams {
		if s.take(tmp) {
			active = true
			for i, v := range tmp {
				acc[i] += int32(v)
			}
		}
	}
	m.gens = slices.DeleteFunc(m.gens, func(p *playing) bool {
		clear(tmp)
		more := p.g.Fill(tmp)
		active = true
		for i, v := range tmp {
			acc[i] += int32(v)
		}
		if !more {
			close(p.done)
		}
		return !more
	})
	m.mu.Unlock()
	for i, v := range acc {
		if m.gain != 1 {
			v = int32(float64(v) * m.gain)
		}
		frame[i] = int16(max(min(v, math.MaxInt16), math.MinInt16))
	}
	m.playingNow.Store(active)
	return active
}

// measure updates the counters and the level.
func (m *Mixer) measure(frame []int16, active bool) {
	if active {
		m.frames.Add(1)
	}
	var e float64
	for _, v := range frame {
		f := float64(v) / 32768
		e += f * f
	}
	m.energy[m.ei] = e
	m.ei = (m.ei + 1) % levelWindow
	var sum float64
	for _, v := range m.energy {
		sum += v
	}
	db := SilenceDBFS
	if sum > 0 {
		db = max(10*math.Log10(sum/float64(levelWindow*FrameSamples)), SilenceDBFS)
	}
	m.levelBits.Store(math.Float64bits(db))
}

// State returns the counters.
func (m *Mixer) State() State {
	st := State{
		Device:    m.cfg.Device,
		Playing:   m.playingNow.Load(),
		Frames:    m.frames.Load(),
		LevelDBFS: math.Round(math.Float64frombits(m.levelBits.Load())*10) / 10,
		Underruns: m.underruns.Load(),
		Dropped:   m.dropped.Load(),
		Errors:    m.errors.Load(),
	}
	m.mu.Lock()
	for _, s := range m.streams {
		st.Sources = append(st.Sources, s.name)
	}
	for _, p := range m.gens {
		st.Sources = append(st.Sources, p.name)
	}
	m.mu.Unlock()
	return st
}

// Play adds a generator (a ring tone) under name. It plays until it says
// it has no more, or until stop is called; done is closed then.
func (m *Mixer) Play(name string, g Generator) (stop func(), done <-chan struct{}) {
	p := &playing{name: name, g: g, done: make(chan struct{})}
	m.mu.Lock()
	m.gens = append(m.gens, p)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if i := slices.Index(m.gens, p); i >= 0 {
			m.gens = slices.Delete(m.gens, i, i+1)
			close(p.done)
		}
	}, p.done
}

// Stream adds a pushed source (a call's decoded far-end audio) under
// name. Close it when the source ends.
func (m *Mixer) Stream(name string) *Stream {
	s := &Stream{m: m, name: name, buf: make([]int16, 0, maxQueued)}
	m.mu.Lock()
	m.streams = append(m.streams, s)
	m.mu.Unlock()
	return s
}

// Jitter handling of a Stream: playing starts (and restarts after an
// underrun) once prebuffer is queued; more than maxQueued queued drops the
// oldest samples, so a stream never lags the speaker by more than that.
const (
	prebuffer = 2 * FrameSamples  // 40 ms
	maxQueued = 10 * FrameSamples // 200 ms
)

// Stream is PCM pushed into the mixer. Write and Close may be called from
// any goroutine.
type Stream struct {
	m    *Mixer
	name string

	mu       sync.Mutex
	buf      []int16 // queued samples at Rate
	started  bool    // prebuffered; playing
	closed   bool
	rs       *pcmu.Resampler
	resample []int16
}

// Write queues samples (mono S16 at rate Hz; any rate the resampler
// takes: 8000, 16000, 48000...). It never blocks: too much queued drops
// the oldest audio.
func (s *Stream) Write(samples []int16, rate int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if rate != Rate {
		if s.rs == nil || s.rs.InRate() != rate {
			rs, err := pcmu.NewResampler(rate, Rate)
			if err != nil {
				return fmt.Errorf("speaker: stream %s: %w", s.name, err)
			}
			s.rs = rs
		}
		samples = s.rs.Process(samples)
	}
	s.buf = append(s.buf, samples...)
	if over := len(s.buf) - maxQueued; over > 0 {
		s.m.dropped.Add(uint64(over))
		s.buf = s.buf[:copy(s.buf, s.buf[over:])]
	}
	return nil
}

// Queued is how much audio waits to be played.
func (s *Stream) Queued() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(len(s.buf)) * time.Second / Rate
}

// take fills frame with the next frame; false: nothing to play.
func (s *Stream) take(frame []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		if len(s.buf) < prebuffer {
			return false
		}
		s.started = true
	}
	n := copy(frame, s.buf)
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	if n < len(frame) {
		clear(frame[n:])
		s.m.underruns.Add(1)
		s.started = false
		return n > 0
	}
	return true
}

// Close removes the stream from the mixer; what is queued is dropped.
func (s *Stream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.buf = s.buf[:0]
	s.mu.Unlock()
	m := s.m
	m.mu.Lock()
	m.streams = slices.DeleteFunc(m.streams, func(x *Stream) bool { return x == s })
	m.mu.Unlock()
	return nil
}

// playedOutput is an Output that reports every buffer it plays (the
// mixer's frames, and silence when the mixer was late) with when its first
// sample leaves the speaker, from the device's own clock (PortAudio's DAC
// time). The echo canceller's reference is then exactly what the device
// played, continuous, in the device's time.
type playedOutput interface {
	// OnPlayed sets the function called with each buffer played; it is
	// called on the device's thread and must not block.
	OnPlayed(func(buf []int16, at time.Time))
}

// clockOutput is no speaker: it only keeps time.
type clockOutput struct{ pace pacer }

func (c *clockOutput) Write([]int16) error    { c.pace.wait(); return nil }
func (c *clockOutput) Latency() time.Duration { return 0 }
func (c *clockOutput) Close() error           { return nil }

// pacer sleeps so successive waits are FrameDuration apart on the wall
// clock; after a long stall it restarts instead of rushing to catch up.
type pacer struct{ next time.Time }

func (p *pacer) wait() {
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > 10*FrameDuration {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		time.Sleep(d)
	}
	p.next = p.next.Add(FrameDuration)
}
