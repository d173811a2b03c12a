// Package mic is callbox's microphone driver: PortAudio (ALSA underneath)
// captures mono signed 16-bit PCM at the configured rate, and Mic hands it
// out in capture.ChunkDuration (20 ms) chunks as a capture.AudioSource.
//
// PortAudio needs cgo. A binary built with CGO_ENABLED=0 still builds and
// runs: Open then fails with ErrNoCgo, and the firmware falls back to its
// synthetic microphone with a log line saying so.
//
// Two kinds of trouble are handled differently. An input overflow (the
// reader fell behind and the driver dropped samples) is a glitch: it is
// counted, the chunk is still delivered and Seq skips one to mark the loss.
// Any other stream error (a USB microphone unplugged) closes the stream;
// ReadChunk then returns errors wrapping capture.ErrDeviceGone while it
// reopens the device with exponential backoff.
package mic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
)

// Stream is an open, started capture stream: the hardware seam.
type Stream interface {
	// Read fills buf (mono samples) completely. overflowed reports that
	// the driver dropped input before this read.
	Read(buf []int16) (overflowed bool, err error)
	Close() error
}

// TimedStream is a Stream that knows when the device captured what Read
// returns (PortAudio's callback has the ADC time). Without it a chunk's
// capture time is taken when Read returns, which is late by however long
// the chunk waited for a reader that fell behind: fine for pictures and
// lip sync, too coarse for the speaker's echo cancellation, which aligns
// the microphone with what the speaker played by these times.
type TimedStream interface {
	Stream
	// ReadTimed is Read, and the wall-clock time of buf's first sample.
	ReadTimed(buf []int16) (at time.Time, overflowed bool, err error)
}

// Backend opens capture streams. The PortAudio backend is the real one;
// mictest.Backend is a fake.
type Backend interface {
	// Open opens device ("" = the system default input) for mono capture
	// at rate, delivering frames samples per Read.
	Open(device string, rate, frames int) (Stream, error)
}

var (
	// ErrNoCgo reports a binary built without cgo, hence without PortAudio.
	ErrNoCgo = errors.New("mic: no microphone: built without cgo (PortAudio needs it)")
	// ErrNoDevice reports that no input device matches.
	ErrNoDevice = errors.New("mic: no such input device")
	// ErrClosed reports use of a closed Mic.
	ErrClosed = errors.New("mic: closed")
)

// Backoff bounds for reopening a failed device.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// Config selects and sets up a microphone.
type Config struct {
	// Device is a PortAudio device name or a case-insensitive part of one
	// (e.g. "Loopback", "hw:1,0", "USB"); "", "auto" and "default" mean the
	// system's default input.
	Device string
	// Rate in samples per second: 8000, 16000, 24000, 32000 or 48000
	// (each a whole number of samples per 20 ms). 0 means 48000.
	Rate int
	// Backend opens streams; nil means PortAudio.
	Backend Backend
	// Log receives state changes; nil discards them.
	Log *slog.Logger
}

// Mic is an open microphone. It implements capture.AudioSource.
type Mic struct {
	cfg    Config
	frames int
	log    *slog.Logger

	closing atomic.Bool
	done    chan struct{} // closed by Close: ends a backoff wait
	once    sync.Once
	mu      sync.Mutex // held by ReadChunk; Close waits for it
	stream  Stream
	buf     []int16
	seq     uint64
	closed  bool

	backoff  time.Duration
	nextTry  time.Time
	glitches atomic.Uint64
	reopens  atomic.Uint64
	gone     atomic.Bool
}

// Open opens the microphone cfg selects and starts capturing. An error
// here means there is no usable microphone now (the caller may fall back
// to a synthetic one); errors after a successful Open are retried.
func Open(cfg Config) (*Mic, error) {
	switch cfg.Device {
	case "auto", "default":
		cfg.Device = ""
	}
	if cfg.Rate == 0 {
		cfg.Rate = 48000
	}
	switch cfg.Rate {
	case 8000, 16000, 24000, 32000, 48000:
	default:
		return nil, fmt.Errorf("mic: unsupported rate %d (want 8000, 16000, 24000, 32000 or 48000)", cfg.Rate)
	}
	if cfg.Backend == nil {
		cfg.Backend = portAudio{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &Mic{cfg: cfg, log: cfg.Log, frames: cfg.Rate * int(capture.ChunkDuration/time.Millisecond) / 1000, backoff: MinBackoff}
	m.buf = make([]int16, m.frames)
	m.done = make(chan struct{})
	s, err := cfg.Backend.Open(cfg.Device, cfg.Rate, m.frames)
	if err != nil {
		return nil, fmt.Errorf("mic: open %q at %d Hz: %w", cfg.Device, cfg.Rate, err)
	}
	m.stream = s
	return m, nil
}

// Rate returns the sample rate.
func (m *Mic) Rate() int { return m.cfg.Rate }

// Glitches counts input overflows (samples the driver dropped).
func (m *Mic) Glitches() uint64 { return m.glitches.Load() }

// Reopens counts successful reopens after device errors.
func (m *Mic) Reopens() uint64 { return m.reopens.Load() }

// Gone reports whether the device is currently unavailable.
func (m *Mic) Gone() bool { return m.gone.Load() }

// ReadChunk implements capture.AudioSource. It blocks for about one chunk.
func (m *Mic) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.closing.Load() {
		return capture.AudioChunk{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return capture.AudioChunk{}, err
	}
	if m.stream == nil {
		if err := m.reopen(ctx); err != nil {
			return capture.AudioChunk{}, err
		}
	}
	var (
		over bool
		err  error
		at   time.Time
	)
	if ts, ok := m.stream.(TimedStream); ok {
		at, over, err = ts.ReadTimed(m.buf)
	} else {
		over, err = m.stream.Read(m.buf)
	}
	end := time.Now()
	if at.IsZero() {
		// The read returns when the last sample has arrived.
		at = end.Add(-capture.ChunkDuration)
	}
	if err != nil {
		m.stream.Close()
		m.stream = nil
		m.gone.Store(true)
		m.nextTry = end.Add(m.backoff)
		m.log.Warn("microphone failed; reopening", "err", err, "after", m.backoff)
		return capture.AudioChunk{}, fmt.Errorf("mic: read: %w: %w", capture.ErrDeviceGone, err)
	}
	if over {
		m.glitches.Add(1)
		m.seq++ // mark the lost samples with a Seq gap
	}
	m.seq++
	return capture.AudioChunk{
		Samples:     m.buf,
		Rate:        m.cfg.Rate,
		CaptureTime: at,
		Seq:         m.seq,
	}, nil
}

// reopen waits for the backoff to pass (ctx-aware), then tries once.
func (m *Mic) reopen(ctx context.Context) error {
	if wait := time.Until(m.nextTry); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
	}
	s, err := m.cfg.Backend.Open(m.cfg.Device, m.cfg.Rate, m.frames)
	if err != nil {
		m.backoff = min(m.backoff*2, MaxBackoff)
		m.nextTry = time.Now().Add(m.backoff)
		return fmt.Errorf("mic: reopen: %w: %w", capture.ErrDeviceGone, err)
	}
	m.stream = s
	m.backoff = MinBackoff
	m.gone.Store(false)
	m.reopens.Add(1)
	m.log.Info("microphone back")
	return nil
}

// Close stops capturing. It waits for a ReadChunk in progress (at most one
// chunk): PortAudio must not close a stream another thread reads.
func (m *Mic) Close() error {
	m.closing.Store(true)
	m.once.Do(func() { close(m.done) })
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.stream == nil {
		return nil
	}
	err := m.stream.Close()
	m.stream = nil
	if err != nil {
		return fmt.Errorf("mic: close: %w", err)
	}
	return nil
}
