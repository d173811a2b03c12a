package firmware

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
)

// mediaTap hands copies of the box's own camera frames and microphone
// chunks to a call (peerPart): the appliance's media pipeline owns the
// devices and keeps feeding the relay; a call reads the same pictures and
// sound through a tapVideo and a tapAudio. With nobody subscribed a tap
// costs one atomic load per frame.
type mediaTap struct {
	n     atomic.Int32 // subscribers of either kind
	mu    sync.Mutex
	video map[*tapVideo]struct{}
	audio map[*tapAudio]struct{}
}

// errTapClosed ends a subscriber's reads after Close.
var errTapClosed = errors.New("media tap: closed")

// wrapVideo returns src with every frame it yields also offered to the
// tap's video subscribers.
func (t *mediaTap) wrapVideo(src capture.VideoSource) capture.VideoSource {
	if src == nil {
		return nil
	}
	return teeVideo{src, t}
}

// wrapAudio is wrapVideo for the microphone.
func (t *mediaTap) wrapAudio(src capture.AudioSource) capture.AudioSource {
	if src == nil {
		return nil
	}
	return teeAudio{src, t}
}

type teeVideo struct {
	capture.VideoSource
	t *mediaTap
}

func (v teeVideo) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	f, err := v.VideoSource.ReadFrame(ctx)
	if err == nil && v.t.n.Load() > 0 {
		v.t.frame(f)
	}
	return f, err
}

type teeAudio struct {
	capture.AudioSource
	t *mediaTap
}

func (a teeAudio) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	c, err := a.AudioSource.ReadChunk(ctx)
	if err == nil && a.t.n.Load() > 0 {
		a.t.chunk(c)
	}
	return c, err
}

// frame copies f to every video subscriber with room for it. A subscriber
// that has not taken the previous frames loses this one (the newest frames
// matter in a call, and the camera must never wait for a call).
func (t *mediaTap) frame(f capture.VideoFrame) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.video {
		if s.codec != 0 && f.Codec != s.codec {
			continue
		}
		if s.minGap > 0 && !s.last.IsZero() && f.CaptureTime.Sub(s.last) < s.minGap-s.minGap/4 {
			continue // above the subscriber's frame rate (a quarter of slack for capture jitter)
		}
		s.last = f.CaptureTime
		c := f
		c.Data = append([]byte(nil), f.Data...)
		select {
		case s.ch <- c:
		default:
			s.dropped.Add(1)
		}
	}
}

func (t *mediaTap) chunk(c capture.AudioChunk) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.audio {
		if s.mute != nil && s.mute() {
			continue // nothing from a muted microphone leaves the box
		}
		cc := c
		cc.Samples = append([]int16(nil), c.Samples...)
		select {
		case s.ch <- cc:
		default:
			s.dropped.Add(1)
		}
	}
}

// subscribeVideo returns a source of the camera's frames of codec (0: any),
// at most one per minGap of capture time (0: every frame).
func (t *mediaTap) subscribeVideo(codec capture.Codec, minGap time.Duration) *tapVideo {
	s := &tapVideo{t: t, codec: codec, minGap: minGap, ch: make(chan capture.VideoFrame, 2), done: make(chan struct{})}
	t.mu.Lock()
	if t.video == nil {
		t.video = map[*tapVideo]struct{}{}
	}
	t.video[s] = struct{}{}
	t.mu.Unlock()
	t.n.Add(1)
	return s
}

// subscribeAudio returns a source of the microphone's chunks; while mute
// reports true none are delivered.
func (t *mediaTap) subscribeAudio(mute func() bool) *tapAudio {
	s := &tapAudio{t: t, mute: mute, ch: make(chan capture.AudioChunk, 10), done: make(chan struct{})}
	t.mu.Lock()
	if t.audio == nil {
		t.audio = map[*tapAudio]struct{}{}
	}
	t.audio[s] = struct{}{}
	t.mu.Unlock()
	t.n.Add(1)
	return s
}

// tapVideo is a capture.VideoSource fed by the tap. Frames it returns are
// its own copies.
type tapVideo struct {
	t       *mediaTap
	codec   capture.Codec
	minGap  time.Duration
	last    time.Time // capture time of the last frame offered (under t.mu)
	ch      chan capture.VideoFrame
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

func (s *tapVideo) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	select {
	case f := <-s.ch:
		return f, nil
	case <-s.done:
		return capture.VideoFrame{}, errTapClosed
	case <-ctx.Done():
		return capture.VideoFrame{}, ctx.Err()
	}
}

func (s *tapVideo) Close() error {
	s.once.Do(func() {
		s.t.mu.Lock()
		delete(s.t.video, s)
		s.t.mu.Unlock()
		s.t.n.Add(-1)
		close(s.done)
	})
	return nil
}

// tapAudio is a capture.AudioSource fed by the tap.
type tapAudio struct {
	t       *mediaTap
	mute    func() bool
	ch      chan capture.AudioChunk
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

func (s *tapAudio) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	select {
	case c := <-s.ch:
		return c, nil
	case <-s.done:
		return capture.AudioChunk{}, errTapClosed
	case <-ctx.Done():
		return capture.AudioChunk{}, ctx.Err()
	}
}

func (s *tapAudio) Close() error {
	s.once.Do(func() {
		s.t.mu.Lock()
		delete(s.t.audio, s)
		s.t.mu.Unlock()
		s.t.n.Add(-1)
		close(s.done)
	})
	return nil
}
