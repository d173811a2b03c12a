//go:build !linux

package board

import (
	"context"
	"errors"
	"os"
)

// IsTerminal reports false: terminal keys are implemented for Linux only.
func IsTerminal(f *os.File) bool { return false }

// ReadKeys is not supported on this OS.
func (s *Sim) ReadKeys(ctx context.Context, f *os.File) error {
	return errors.New("sim keys: terminal keys need Linux")
}
