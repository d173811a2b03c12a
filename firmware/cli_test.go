package firmware

import (
	"io"
	"os"
	"strings"
	"testing"
)

// captureStdout runs f with os.Stdout going to a pipe and returns what it
// wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return <-done
}

// Every subcommand answers -h (and --help) on stdout with a synopsis,
// examples and its flags, and exit status 0; a bad flag is status 2.
func TestSubcommandsHelp(t *testing.T) {
	for name, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			var code int
			out := captureStdout(t, func() { code = c.run([]string{h}) })
			if code != 0 {
				t.Errorf("callbox %s %s: exit %d", name, h, code)
			}
			for _, want := range []string{"usage: callbox " + name, "examples:\n  callbox " + name, "flags:"} {
				if !strings.Contains(out, want) {
					t.Errorf("callbox %s %s: no %q in\n%s", name, h, want, out)
				}
			}
		}
		devnull, _ := os.Open(os.DevNull)
		stderr := os.Stderr
		os.Stderr = devnull
		code := c.run([]string{"--no-such-flag"})
		os.Stderr = stderr
		devnull.Close()
		if code != 2 {
			t.Errorf("callbox %s --no-such-flag: exit %d, want 2", name, code)
		}
	}
	if code := Main([]string{"help"}); code != 0 {
		t.Errorf("callbox help: exit %d", code)
	}
}
