// Package mictest provides a fake drivers/mic Backend: a sine tone at a
// chosen frequency and level, injectable input overflows, and a device
// that can be unplugged and plugged back.
package mictest

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/callbox/callbox/drivers/mic"
)

// ErrUnplugged is what the fake device returns while unplugged.
var ErrUnplugged = errors.New("mictest: device unplugged")

// Backend is a fake mic.Backend producing a sine tone.
type Backend struct {
	Freq      float64 // Hz
	Amplitude float64 // peak, in sample units
	// Pace makes Read take real time like a device (one chunk per chunk
	// duration); off, reads return at once.
	Pace bool

	mu        sync.Mutex
	pos       int // samples produced so far (phase continues across streams)
	overflows map[int]bool
	reads     int
	unplugged bool
	opens     int
	open      int
}

// NewBackend returns a backend producing freq Hz at amplitude.
func NewBackend(freq, amplitude float64) *Backend {
	return &Backend{Freq: freq, Amplitude: amplitude, overflows: map[int]bool{}}
}

// OverflowAt makes the n-th Read (1-based, counted across streams) report
// an input overflow.
func (b *Backend) OverflowAt(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.overflows[n] = true
}

// Unplug makes reads and opens fail until Plug.
func (b *Backend) Unplug() { b.mu.Lock(); b.unplugged = true; b.mu.Unlock() }

// Plug undoes Unplug.
func (b *Backend) Plug() { b.mu.Lock(); b.unplugged = false; b.mu.Unlock() }

// Stats returns the number of Open calls and of streams still open.
func (b *Backend) Stats() (opens, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opens, b.open
}

// Open implements mic.Backend.
func (b *Backend) Open(device string, rate, frames int) (mic.Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	if b.unplugged {
		return nil, ErrUnplugged
	}
	if device != "" && device != "fake" {
		return nil, mic.ErrNoDevice
	}
	b.open++
	return &stream{b: b, rate: rate}, nil
}

type stream struct {
	b      *Backend
	rate   int
	closed bool
}

func (s *stream) Read(buf []int16) (bool, error) {
	b := s.b
	if b.Pace {
		time.Sleep(time.Duration(len(buf)) * time.Second / time.Duration(s.rate))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unplugged {
		return false, ErrUnplugged
	}
	b.reads++
	over := b.overflows[b.reads]
	if over {
		b.pos += len(buf) // the samples the driver dropped
	}
	for i := range buf {
		t := float64(b.pos+i) / float64(s.rate)
		buf[i] = int16(math.Round(b.Amplitude * math.Sin(2*math.Pi*b.Freq*t)))
	}
	b.pos += len(buf)
	return over, nil
}

func (s *stream) Close() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.b.open--
	}
	return nil
}

// Analyze estimates the frequency of a tone from its zero crossings
// (interpolated between samples) and its RMS level. Good for a clean tone,
// which is what the tests play; meaningless for speech or noise.
func Analyze(samples []int16, rate int) (freq, rms float64) {
	if len(samples) < 2 || rate <= 0 {
		return 0, 0
	}
	var sum float64
	for _, s := range samples {
		sum += float64(s) * float64(s)
	}
	rms = math.Sqrt(sum / float64(len(samples)))
	// Rising zero crossings, at sub-sample positions.
	first, last, n := -1.0, -1.0, 0
	for i := 1; i < len(samples); i++ {
		a, b := float64(samples[i-1]), float64(samples[i])
		if a < 0 && b >= 0 {
			x := float64(i-1) + a/(a-b)
			if first < 0 {
				first = x
			}
			last = x
			n++
		}
	}
	if n < 2 {
		return 0, rms
	}
	return float64(n-1) * float64(rate) / (last - first), rms
}
