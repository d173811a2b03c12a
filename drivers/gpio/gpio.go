// Package gpio is callbox's seam to the board's buttons and lights: input
// lines with edge detection and software debounce, output lines, and the
// board's own LEDs through the kernel's sysfs LED class.
//
// # Concepts
//
// Consumers (the board package) see two tiny interfaces, Input and Output,
// and never a device node. Real lines come from the Linux GPIO character
// device through periph.io's gpioioctl driver (OpenInput, OpenOutput); LEDs
// that the kernel already owns (a device-tree "gpio-leds" node, an ACT LED)
// come from /sys/class/leds (OpenLED). Fakes for tests live in
// drivers/gpio/gpiotest.
//
// The debounce logic (NewInput) works on the small Line interface and an
// injectable Clock, so the same code runs on a real gpioioctl line, on a
// gpio-sim line in the HIL VM, and on gpiotest.Pin with a fake clock in unit
// tests.
//
// # Bias
//
// Buttons on the board have external pull resistors, so inputs are requested
// with Pull = gpio.Float by default: no bias flag in the line request. Asking
// the kernel for a pull-up on such a line is at best redundant; on gpio-sim
// (the HIL VM) it even changes the simulated level, because gpio-sim models
// bias as the line's pull.
package gpio

import (
	"errors"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Edge is one debounced level change of an Input.
type Edge struct {
	// Active is the new logical level: true when the line became active
	// (for an ActiveLow button: pressed, physical level low).
	Active bool
	// Time is when the first raw edge of this change was seen; the level
	// was then stable for the debounce interval before the Edge was sent.
	Time time.Time
}

// Input is a debounced input line.
type Input interface {
	// Events delivers debounced changes. The channel is closed by Close.
	Events() <-chan Edge
	// Read returns the current debounced logical level.
	Read() bool
	Close() error
}

// Output is a line or a light that can be switched on and off.
type Output interface {
	Set(on bool) error
	Close() error
}

// Line is the raw input seam the debouncer needs. periph's
// *gpioioctl.GPIOLine and gpiotest.Pin implement it.
type Line interface {
	In(pull gpio.Pull, edge gpio.Edge) error
	Read() gpio.Level
	// WaitForEdge blocks until an edge, the timeout, or Halt; it reports
	// whether an edge was seen.
	WaitForEdge(timeout time.Duration) bool
	Halt() error
}

// OutLine is the raw output seam.
type OutLine interface {
	Out(l gpio.Level) error
}

// Clock tells time. Tests inject gpiotest.Clock; nil means the wall clock.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

var (
	// ErrNotFound reports that no chip, line or LED matches a name.
	ErrNotFound = errors.New("gpio: not found")
	// ErrClosed reports use of a closed line.
	ErrClosed = errors.New("gpio: closed")
	// ErrUnsupported reports that this OS has no GPIO character device.
	ErrUnsupported = errors.New("gpio: not supported on this OS")
)
