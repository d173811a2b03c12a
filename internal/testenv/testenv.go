// Package testenv decides what a test does when the machine lacks something
// it needs (a program, root, network namespaces). Outside CI the test is
// skipped with a loud message; in CI (CI=true) a missing capability that the
// project's install step should have provided is a failure, so nothing that
// must run in CI can silently stop running.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// InCI reports whether the tests run under the project's CI (.ci/run sets CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t loudly, or fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("REQUIRED IN CI but unavailable: %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIP %s: %s ***\n\n", t.Name(), msg)
	t.Skip("SKIPPED (not in CI): " + msg)
}

// LookPath returns the path of program or calls Unavailable.
func LookPath(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		Unavailable(t, "%s not installed (run `make deps` as root)", program)
	}
	return p
}

// RequireRoot calls Unavailable unless the test runs as root (network
// namespaces, tc, VMs with module loading need it).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// Short skips t (never fails) when -short is given: for slow end-to-end tests
// that the full suite runs anyway.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow end-to-end test; skipped with -short")
	}
}

// ExecEnv names the emulator that runs a foreign-architecture test binary:
// scripts/cross.sh runs the arm64 and armv7 tests under qemu-user without
// registering binfmt_misc (host-wide state), so a test binary cannot simply
// exec itself there.
const ExecEnv = "CALLBOX_TEST_EXEC"

// Self returns the command line that runs this test binary again as a
// helper process, followed by args: os.Args[0], behind the emulator
// ExecEnv names when it is set.
func Self(args ...string) []string {
	var argv []string
	if emu := os.Getenv(ExecEnv); emu != "" {
		argv = append(argv, emu)
	}
	return append(append(argv, os.Args[0]), args...)
}

// Overloaded reports whether the machine's 1-minute load average is above
// its number of cores, and the figure: a timing target missed then says
// more about the other processes than about the code (the project's
// machines are shared). Timing tests judge a target only on a machine that
// was not overloaded, and log the figure either way.
func Overloaded() (bool, float64) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return false, 0
	}
	var load float64
	if _, err := fmt.Sscan(string(b), &load); err != nil {
		return false, 0
	}
	return load > float64(runtime.NumCPU()), load
}
