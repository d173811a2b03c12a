//go:build linux

package gpio

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/host/v3/gpioioctl"
)

var (
	initOnce sync.Once
	initErr  error
)

// chips initialises periph's gpioioctl driver once and returns the GPIO
// character devices it found. Chips created after the first call (a gpio-sim
// bank made live later) are not seen: the driver scans only once.
func chips() ([]*gpioioctl.GPIOChip, error) {
	initOnce.Do(func() {
		if _, err := driverreg.Init(); err != nil {
			initErr = fmt.Errorf("gpio: periph init: %w", err)
		}
	})
	if initErr != nil {
		return nil, initErr
	}
	if len(gpioioctl.Chips) == 0 {
		return nil, fmt.Errorf("gpio: no /dev/gpiochip*: %w", ErrNotFound)
	}
	return gpioioctl.Chips, nil
}

// ChipInfo describes a GPIO chip for logs and diagnostics.
type ChipInfo struct {
	Name  string // gpiochipN
	Label string // driver label, e.g. pinctrl-bcm2711 or gpio-sim.0-node0
	Lines []string
}

// Chips lists the GPIO chips of this machine.
func Chips() ([]ChipInfo, error) {
	cs, err := chips()
	if err != nil {
		return nil, err
	}
	out := make([]ChipInfo, 0, len(cs))
	for _, c := range cs {
		ci := ChipInfo{Name: c.Name(), Label: c.Label()}
		for _, l := range c.Lines() {
			ci.Lines = append(ci.Lines, l.Name())
		}
		out = append(out, ci)
	}
	return out, nil
}

// findLine resolves a line spec: "LINE" (a line name, searched on every
// chip) or "CHIP:LINE" where CHIP is a chip name (gpiochip0), its label or
// its /dev path, and LINE a line name or offset.
func findLine(spec string) (*gpioioctl.GPIOLine, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("gpio: empty line spec")
	}
	cs, err := chips()
	if err != nil {
		return nil, err
	}
	chipName, lineName, hasChip := strings.Cut(spec, ":")
	if !hasChip {
		lineName = chipName
		for _, c := range cs {
			if l := c.ByName(lineName); l != nil {
				return l, nil
			}
		}
		return nil, fmt.Errorf("gpio: line %q on any chip: %w", lineName, ErrNotFound)
	}
	for _, c := range cs {
		if c.Name() != chipName && c.Label() != chipName && c.Path() != chipName {
			continue
		}
		if l := c.ByName(lineName); l != nil {
			return l, nil
		}
		n, err := strconv.Atoi(lineName)
		if err != nil || n < 0 || n >= c.LineCount() {
			return nil, fmt.Errorf("gpio: line %q on %s (%d lines): %w", lineName, c.Name(), c.LineCount(), ErrNotFound)
		}
		return c.ByNumber(n), nil
	}
	return nil, fmt.Errorf("gpio: chip %q: %w", chipName, ErrNotFound)
}

// OpenInput requests the line named by spec (see the package doc and
// findLine) as a debounced input. Close releases the line.
func OpenInput(spec string, opts InputOptions) (Input, error) {
	l, err := findLine(spec)
	if err != nil {
		return nil, err
	}
	in, err := newInput(l, opts, func() error { l.Close(); return nil })
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("gpio: input %s: %w", spec, err)
	}
	return in, nil
}

// OpenOutput requests the line named by spec as an output, initially off.
// Close switches it off and releases it.
func OpenOutput(spec string, opts OutputOptions) (Output, error) {
	l, err := findLine(spec)
	if err != nil {
		return nil, err
	}
	o, err := newOutput(l, opts, func() error { l.Close(); return nil })
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("gpio: output %s: %w", spec, err)
	}
	return o, nil
}
