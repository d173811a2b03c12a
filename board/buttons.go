package board

import (
	"fmt"
	"time"
)

// Button names one of the box's two buttons.
type Button int

// The buttons. A is the main button (mute, pairing confirmations, reset);
// B is the call button.
const (
	ButtonA Button = iota
	ButtonB
)

func (b Button) String() string {
	switch b {
	case ButtonA:
		return "A"
	case ButtonB:
		return "B"
	}
	return fmt.Sprintf("Button(%d)", int(b))
}

// Gesture is a classified press.
type Gesture int

// The gestures.
const (
	Short    Gesture = iota // released before Timing.Long
	Long                    // held at least Timing.Long
	VeryLong                // held at least Timing.VeryLong
	Both                    // A and B down at the same time, any length
)

func (g Gesture) String() string {
	switch g {
	case Short:
		return "short"
	case Long:
		return "long"
	case VeryLong:
		return "very long"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Gesture(%d)", int(g))
}

// Press is a completed gesture on a button (Button is ButtonA for Both).
type Press struct {
	Button  Button
	Gesture Gesture
}

// Timing sets the press-length thresholds.
type Timing struct {
	// Debounce: presses shorter than this are contact noise and ignored.
	// The GPIO driver debounces edges already; this also guards simulated
	// and fake inputs, and costs nothing.
	Debounce time.Duration
	Long     time.Duration
	VeryLong time.Duration
}

// DefaultTiming matches the configuration's defaults.
var DefaultTiming = Timing{Debounce: 30 * time.Millisecond, Long: 1500 * time.Millisecond, VeryLong: 10 * time.Second}

// classifier turns button edges into gestures. A gesture completes on
// release, because only then is its length known; while a button is held,
// holding reports how far it has got, so the LED can tell the person when
// to let go.
type classifier struct {
	t     Timing
	down  [2]bool
	since [2]time.Time
	both  bool // the current press involves both buttons
}

func (c *classifier) press(b Button, at time.Time) {
	if b != ButtonA && b != ButtonB || c.down[b] {
		return // an unknown button, or a repeated edge
	}
	c.down[b] = true
	c.since[b] = at
	if c.down[1-b] {
		c.both = true
	}
}

// release ends a press and returns the gesture it completed, if any.
func (c *classifier) release(b Button, at time.Time) (Press, bool) {
	if b != ButtonA && b != ButtonB || !c.down[b] {
		return Press{}, false
	}
	c.down[b] = false
	if c.both {
		// The two-button gesture completes when the last one is released,
		// and is reported once.
		if c.down[1-b] {
			return Press{}, false
		}
		c.both = false
		return Press{ButtonA, Both}, true
	}
	d := at.Sub(c.since[b])
	switch {
	case d < c.t.Debounce:
		return Press{}, false
	case d >= c.t.VeryLong:
		return Press{b, VeryLong}, true
	case d >= c.t.Long:
		return Press{b, Long}, true
	}
	return Press{b, Short}, true
}

// holding reports the gesture a single held button has reached by now.
func (c *classifier) holding(b Button, now time.Time) (Gesture, bool) {
	if !c.down[b] || c.both {
		return 0, false
	}
	d := now.Sub(c.since[b])
	switch {
	case d >= c.t.VeryLong:
		return VeryLong, true
	case d >= c.t.Long:
		return Long, true
	}
	return Short, true
}
