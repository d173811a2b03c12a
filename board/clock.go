package board

import "time"

// Clock is the Machine's and Player's only source of time, so tests can
// step through seconds of button holds and LED rhythms instantly.
type Clock interface {
	Now() time.Time
	// After behaves like time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// WallClock is the real clock.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (WallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
