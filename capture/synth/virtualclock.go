package synth

import (
	"sync"
	"time"
)

// VirtualClock is a Clock whose time moves only when a source waits on it or
// the caller calls Advance. A timer set for d moves the clock forward by d and
// fires at once, so a source paced by a VirtualClock runs as fast as its
// reader and its timestamps are exact. It suits one reader at a time.
type VirtualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewVirtualClock returns a VirtualClock that starts at start.
func NewVirtualClock(start time.Time) *VirtualClock { return &VirtualClock{now: start} }

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the virtual time forward by d, e.g. to make a reader late.
func (c *VirtualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// NewTimer advances the clock by d and returns a timer that has fired.
func (c *VirtualClock) NewTimer(d time.Duration) Timer {
	t := &virtualTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

type virtualTimer struct {
	c  *VirtualClock
	ch chan time.Time
}

func (t *virtualTimer) C() <-chan time.Time { return t.ch }

func (t *virtualTimer) Reset(d time.Duration) bool {
	t.Stop()
	if d > 0 {
		t.c.Advance(d)
	}
	t.ch <- t.c.Now()
	return false
}

func (t *virtualTimer) Stop() bool {
	select {
	case <-t.ch:
		return true
	default:
		return false
	}
}
