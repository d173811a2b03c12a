//go:build linux

package board

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ReadKeys reads single key presses from the terminal f (no Enter needed,
// no echo; Ctrl-C still stops the program) until ctx ends, and restores the
// terminal before returning.
func (s *Sim) ReadKeys(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("sim keys: %w", err)
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return fmt.Errorf("sim keys: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	buf := make([]byte, 16)
	for ctx.Err() == nil {
		// Poll with a timeout so that the loop notices ctx ending; a
		// blocking read would hold the terminal in raw mode until a key.
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("sim keys: %w", err)
		}
		m, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sim keys: %w", err)
		}
		if m == 0 {
			return nil // end of input
		}
		for _, k := range buf[:m] {
			s.Key(k)
		}
	}
	return nil
}
