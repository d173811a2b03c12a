//go:build linux

package board

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/internal/testenv"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminals (/dev/ptmx): %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// Keys typed on a terminal reach the box without Enter, and the terminal
// is restored when the reader stops.
func TestReadKeysOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	if !IsTerminal(slave) {
		t.Fatal("a pty slave is not a terminal")
	}
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	sim := NewSim(&syncBuf{}, true)
	b := NewBox(BoxOptions{Clock: newFakeClock(), LED: sim})
	sim.Attach(b)
	b.Booted()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.ReadKeys(ctx, slave) }()

	// Canonical mode would hold "a" until a newline: wait for raw mode.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err == nil && tio.Lflag&unix.ICANON == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("terminal not switched to raw keys")
		}
		time.Sleep(time.Millisecond)
	}
	master.Write([]byte("a"))
	waitFor(t, "key a to mute", func() bool { return b.Muted() })
	tok := make(chan string, 1)
	go func() { t, _ := b.RequestPairing(context.Background(), "phone", ""); tok <- t }()
	waitFor(t, "a phone to wait", func() bool { return b.Status().Waiting == 1 })
	master.Write([]byte("x"))
	if <-tok == "" {
		t.Fatal("key x did not admit the waiting phone")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadKeys did not stop")
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Cc != before.Cc {
		t.Fatalf("terminal not restored: lflag %#x -> %#x", before.Lflag, after.Lflag)
	}
}

func TestIsTerminalFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is a terminal")
	}
}
