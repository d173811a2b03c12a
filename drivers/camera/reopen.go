package camera

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

// DefaultRetry is how often Reopening tries to open a vanished camera. It
// bounds the time from the device coming back to the first frame (the
// appliance promises 2 s) at the cost of one failed open() per interval.
const DefaultRetry = 500 * time.Millisecond

// Reopening is a capture.VideoSource that survives its device vanishing.
// While the device is gone, ReadFrame returns an error wrapping
// capture.ErrDeviceGone at most once per retry interval (so a reading loop
// neither spins nor stalls, and can show the state); as soon as open
// succeeds again, frames flow again. Seq keeps increasing across reopens,
// with a gap where frames were lost.
type Reopening struct {
	open  func() (capture.VideoSource, error)
	retry time.Duration
	log   *slog.Logger

	mu      sync.Mutex // serialises ReadFrame
	curMu   sync.Mutex // guards cur for Close, which must not wait for mu
	cur     capture.VideoSource
	lastTry time.Time
	seqBase uint64
	lastSeq uint64
	gone    atomic.Bool
	closed  chan struct{}
	once    sync.Once
}

// NewReopening wraps open, which must return a fresh source each call
// (e.g. a closure over Open(cfg)). first, if not nil, is the source already
// open (so a caller can fail early on a bad device); otherwise the first
// ReadFrame opens one. retry <= 0 means DefaultRetry; log may be nil.
func NewReopening(first capture.VideoSource, open func() (capture.VideoSource, error), retry time.Duration, log *slog.Logger) (*Reopening, error) {
	if open == nil {
		return nil, errors.New("camera: NewReopening: nil open function")
	}
	if retry <= 0 {
		retry = DefaultRetry
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reopening{cur: first, open: open, retry: retry, log: log, closed: make(chan struct{})}, nil
}

// Gone reports whether the device is currently missing.
func (r *Reopening) Gone() bool { return r.gone.Load() }

// ReadFrame implements capture.VideoSource.
func (r *Reopening) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return capture.VideoFrame{}, ErrClosed
	default:
	}
	if r.cur == nil {
		if wait := time.Until(r.lastTry.Add(r.retry)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return capture.VideoFrame{}, ctx.Err()
			case <-r.closed:
				t.Stop()
				return capture.VideoFrame{}, ErrClosed
			}
		}
		r.lastTry = time.Now()
		src, err := r.open()
		if err != nil {
			if !r.gone.Swap(true) {
				r.log.Warn("camera unavailable; retrying", "every", r.retry, "err", err)
			}
			return capture.VideoFrame{}, fmt.Errorf("%w (reopen: %w)", capture.ErrDeviceGone, err)
		}
		if r.gone.Swap(false) {
			r.log.Info("camera back")
		}
		r.setCur(src)
		r.seqBase = r.lastSeq + 1 // a gap of at least one marks the outage
	}
	fr, err := r.cur.ReadFrame(ctx)
	if err == nil {
		fr.Seq += r.seqBase
		r.lastSeq = fr.Seq
		return fr, nil
	}
	if errors.Is(err, capture.ErrDeviceGone) {
		r.log.Warn("camera gone", "err", err)
		r.gone.Store(true)
		r.cur.Close()
		r.setCur(nil)
		// Try again at once: a driver reset (rather than an unplug)
		// often leaves the node usable immediately.
		r.lastTry = time.Time{}
	}
	return capture.VideoFrame{}, err
}

func (r *Reopening) setCur(src capture.VideoSource) {
	r.curMu.Lock()
	r.cur = src
	r.curMu.Unlock()
}

// Close closes the current source; a pending ReadFrame returns promptly.
// The source is closed before waiting for ReadFrame: a Camera's Close
// interrupts its own ReadFrame, so a stalled device cannot hold Close up.
func (r *Reopening) Close() error {
	r.once.Do(func() { close(r.closed) })
	r.curMu.Lock()
	cur := r.cur
	r.curMu.Unlock()
	var err error
	if cur != nil {
		err = cur.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setCur(nil)
	return err
}
