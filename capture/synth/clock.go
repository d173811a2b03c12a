package synth

import "time"

// Clock is the time base that paces the synthetic sources. Tests inject a
// virtual clock so pacing is checked exactly and without sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once d has elapsed. The sources
	// create one timer and Reset it for every frame, so pacing allocates
	// nothing in steady state.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the sources use.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a *time.Timer behind the Timer interface.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time        { return s.t.C }
func (s sysTimer) Reset(d time.Duration) bool { return s.t.Reset(d) }
func (s sysTimer) Stop() bool                 { return s.t.Stop() }
