package gpio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// LEDClassDir is where the kernel's LED class lives.
const LEDClassDir = "/sys/class/leds"

// LEDClass opens LEDs under Dir (LEDClassDir on a real system; tests point
// it at a temporary directory shaped like sysfs).
type LEDClass struct{ Dir string }

func (c LEDClass) dir() string {
	if c.Dir == "" {
		return LEDClassDir
	}
	return c.Dir
}

// LEDs lists the LED names of this machine (e.g. ACT, PWR, led0).
func LEDs() ([]string, error) { return LEDClass{}.List() }

// OpenLED opens the LED called name in the kernel's LED class.
func OpenLED(name string) (Output, error) { return LEDClass{}.Open(name) }

// List returns the LED names under the class directory, sorted. A machine
// without LEDs has no class directory: that is an empty list, not an error.
func (c LEDClass) List() ([]string, error) {
	ents, err := os.ReadDir(c.dir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gpio: list LEDs: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

type led struct {
	mu     sync.Mutex
	path   string
	max    int
	closed bool
}

// Open takes over the LED called name: its trigger is set to "none" so a
// kernel trigger (heartbeat, mmc activity) no longer fights our pattern,
// and it starts off.
func (c LEDClass) Open(name string) (Output, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("gpio: bad LED name %q", name)
	}
	dir := filepath.Join(c.dir(), name)
	b, err := os.ReadFile(filepath.Join(dir, "max_brightness"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gpio: LED %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("gpio: LED %q: %w", name, err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || max <= 0 {
		return nil, fmt.Errorf("gpio: LED %q: bad max_brightness %q", name, strings.TrimSpace(string(b)))
	}
	// Not every LED has a trigger file (and writing it needs root); an LED
	// whose trigger we cannot change still works, it may just flicker.
	_ = os.WriteFile(filepath.Join(dir, "trigger"), []byte("none"), 0)
	l := &led{path: filepath.Join(dir, "brightness"), max: max}
	if err := l.Set(false); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *led) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.write(on)
}

func (l *led) write(on bool) error {
	v := "0"
	if on {
		v = strconv.Itoa(l.max)
	}
	if err := os.WriteFile(l.path, []byte(v), 0); err != nil {
		return fmt.Errorf("gpio: LED: %w", err)
	}
	return nil
}

// Close switches the LED off.
func (l *led) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.write(false)
}
