package media

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
)

// ErrTapClosed ends a subscriber's reads after Close.
var ErrTapClosed = errors.New("media tap: closed")

// Tap hands copies of a source's units to subscribers (a call reads the
// box's camera and microphone this way while the pipeline keeps feeding
// the relay). A subscriber that has not taken the previous units loses the
// new one: the newest units matter in a call, and a source must never wait
// for a subscriber. With nobody subscribed a tap costs one atomic load per
// unit.
type Tap[U Unit] struct {
	n    atomic.Int32
	mu   sync.Mutex
	subs map[*Sub[U]]struct{}
}

// Sub is one subscriber of a Tap. The units it returns are its own copies.
type Sub[U Unit] struct {
	t       *Tap[U]
	accept  func(U) bool // under t.mu; nil takes every unit
	ch      chan U
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

// Subscribe adds a subscriber with a queue of depth units; accept (called
// with the tap's lock held, so it may keep state) filters the units it
// gets.
func (t *Tap[U]) Subscribe(depth int, accept func(U) bool) *Sub[U] {
	s := &Sub[U]{t: t, accept: accept, ch: make(chan U, depth), done: make(chan struct{})}
	t.mu.Lock()
	if t.subs == nil {
		t.subs = map[*Sub[U]]struct{}{}
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	t.n.Add(1)
	return s
}

// Subscribers is the number of open subscribers.
func (t *Tap[U]) Subscribers() int { return int(t.n.Load()) }

// offer copies u to every subscriber that accepts it and has room.
func (t *Tap[U]) offer(u U) {
	if t == nil || t.n.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs {
		if s.accept != nil && !s.accept(u) {
			continue
		}
		select {
		case s.ch <- clone(u):
		default:
			s.dropped.Add(1)
		}
	}
}

// Read returns the next unit, ErrTapClosed after Close, or ctx's error.
func (s *Sub[U]) Read(ctx context.Context) (U, error) {
	var zero U
	select {
	case u := <-s.ch:
		return u, nil
	case <-s.done:
		return zero, ErrTapClosed
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Dropped counts the units this subscriber had no room for.
func (s *Sub[U]) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes; pending and later reads return ErrTapClosed.
func (s *Sub[U]) Close() error {
	s.once.Do(func() {
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
		s.t.n.Add(-1)
		close(s.done)
	})
	return nil
}

// VideoSub is a Sub as a capture.VideoSource.
type VideoSub struct{ *Sub[capture.VideoFrame] }

func (s VideoSub) ReadFrame(ctx context.Context) (capture.VideoFrame, error) { return s.Read(ctx) }

// AudioSub is a Sub as a capture.AudioSource.
type AudioSub struct{ *Sub[capture.AudioChunk] }

func (s AudioSub) ReadChunk(ctx context.Context) (capture.AudioChunk, error) { return s.Read(ctx) }

// VideoFilter accepts frames of codec (0: any), at most one per minGap of
// capture time (0: every frame), with a quarter of minGap of slack for
// capture jitter.
func VideoFilter(codec capture.Codec, minGap time.Duration) func(capture.VideoFrame) bool {
	var last time.Time
	return func(f capture.VideoFrame) bool {
		if codec != 0 && f.Codec != codec {
			return false
		}
		if minGap > 0 && !last.IsZero() && f.CaptureTime.Sub(last) < minGap-minGap/4 {
			return false
		}
		last = f.CaptureTime
		return true
	}
}

// tee is a Source whose units are also offered to a Tap.
type tee[U Unit] struct {
	Source[U]
	t *Tap[U]
}

func (s tee[U]) Read(ctx context.Context) (U, error) {
	u, err := s.Source.Read(ctx)
	if err == nil {
		s.t.offer(u)
	}
	return u, err
}
