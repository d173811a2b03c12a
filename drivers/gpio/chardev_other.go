//go:build !linux

package gpio

import "fmt"

// ChipInfo describes a GPIO chip for logs and diagnostics.
type ChipInfo struct {
	Name  string
	Label string
	Lines []string
}

// Chips reports ErrUnsupported: only Linux has the GPIO character device.
func Chips() ([]ChipInfo, error) { return nil, ErrUnsupported }

// OpenInput reports ErrUnsupported off Linux.
func OpenInput(spec string, opts InputOptions) (Input, error) {
	return nil, fmt.Errorf("gpio: input %s: %w", spec, ErrUnsupported)
}

// OpenOutput reports ErrUnsupported off Linux.
func OpenOutput(spec string, opts OutputOptions) (Output, error) {
	return nil, fmt.Errorf("gpio: output %s: %w", spec, ErrUnsupported)
}
