package box

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestNoGoroutineLeak makes a whole call (hub, TURN, two boxes, pion) in a
// subtest, lets its cleanups run, and checks that every goroutine it
// started has ended.
func TestNoGoroutineLeak(t *testing.T) {
	testenvShort(t)
	before := runtime.NumGoroutine()
	t.Run("call", func(t *testing.T) {
		l := newVLab(t)
		a := l.box("a", "A", coneNAT, "10.201.1.2")
		b := l.box("b", "B", symmetricNAT, "10.201.2.2")
		pair(t, a, b)
		runCall(t, a, b, func() {})
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var ours []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "testing.") {
				ours = append(ours, g)
			}
		}
		t.Errorf("%d goroutines before the call, %d after:\n%s", before, n, strings.Join(ours, "\n\n"))
	}
}
