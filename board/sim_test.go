package board

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSimPress(t *testing.T) {
	good := map[string]SimPress{
		`{"button":"a","ms":100}`:     {"a", 100},
		`{"button":"both","ms":2000}`: {"both", 2000},
		`{"button":"b"}`:              {"b", 100},
	}
	for in, want := range good {
		got, err := ParseSimPress([]byte(in))
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `{`, `{"button":"c"}`, `{"button":"a","ms":-1}`, `{"button":"a","ms":99999999}`, `{"button":"a","extra":1}`, `[]`} {
		if _, err := ParseSimPress([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParseSimPress(f *testing.F) {
	f.Add([]byte(`{"button":"a","ms":100}`))
	f.Add([]byte(`{"button":"both","ms":10500}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSimPress(data)
		if err != nil {
			return
		}
		if p.MS <= 0 || time.Duration(p.MS)*time.Millisecond > MaxSimPress {
			t.Fatalf("accepted %+v", p)
		}
		if p.Button != "a" && p.Button != "b" && p.Button != "both" {
			t.Fatalf("accepted button %q", p.Button)
		}
	})
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The simulated buttons reach the state machine with back-dated lengths,
// and the non-terminal status output logs each change once.
func TestSimButtons(t *testing.T) {
	var out syncBuf
	sim := NewSim(&out, false)
	clk := newFakeClock()
	b := NewBox(BoxOptions{Clock: clk, LED: sim, OnRefresh: sim.Refresh, Machine: MachineConfig{Timing: DefaultTiming, ResetConfirm: 15 * time.Second}})
	sim.Attach(b)
	b.Booted()
	sim.Key('a')
	if !b.Muted() {
		t.Fatal("key a did not mute")
	}
	sim.Push(SimPress{"a", 100})
	tok := make(chan string, 1)
	go func() { t, _ := b.RequestPairing(context.Background(), "phone", ""); tok <- t }()
	waitFor(t, "the phone to wait", func() bool { return b.Status().Waiting == 1 })
	sim.Key('x')
	if <-tok == "" {
		t.Fatal("key x did not admit the waiting phone")
	}
	sim.Key('r')
	if !b.Status().ResetAsked {
		t.Fatal("key r did not ask for a reset")
	}
	sim.Key('a')
	if b.Status().ResetAsked {
		t.Fatal("reset not confirmed")
	}
	sim.Key('?') // ignored
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, want := range []string{"state muted", "state pairing", "state ready"} {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("no %q in the output:\n%s", want, out.String())
		}
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			t.Errorf("line repeated: %s", lines[i])
		}
	}
}

func TestSimTTYLine(t *testing.T) {
	var out syncBuf
	sim := NewSim(&out, true)
	b := NewBox(BoxOptions{Clock: newFakeClock(), LED: sim})
	sim.Attach(b)
	b.Booted()
	sim.Set(Green)
	s := out.String()
	if !strings.HasPrefix(s, "\r\x1b[K\x1b[32m●") || !strings.Contains(s, "ready | LED ready") || strings.Contains(s, "\n") {
		t.Fatalf("status line %q", s)
	}
}

// Log lines go above the status line, which is redrawn after each.
func TestSimLogWriter(t *testing.T) {
	var out syncBuf
	sim := NewSim(&out, true)
	b := NewBox(BoxOptions{Clock: newFakeClock(), LED: sim})
	sim.Attach(b)
	fmt.Fprintf(sim.Writer(), "booting log\n")
	b.Booted()
	sim.Set(Green)
	fmt.Fprintf(sim.Writer(), "a log line\n")
	sim.Close()
	s := out.String()
	i := strings.Index(s, "a log line\n")
	if !strings.HasPrefix(s, "booting log\n") || i < 0 || !strings.HasPrefix(s[i-len("\r\x1b[K"):], "\r\x1b[Ka log line") {
		t.Fatalf("output %q", s)
	}
	rest := s[i+len("a log line\n"):]
	if !strings.HasPrefix(rest, "\r\x1b[K\x1b[32m") || !strings.HasSuffix(rest, "\n") || !strings.Contains(rest, "ready | LED ready") {
		t.Fatalf("status not redrawn below the log: %q", rest)
	}
}

func TestSimLineFitsTerminal(t *testing.T) {
	var out syncBuf
	sim := NewSim(&out, true)
	b := NewBox(BoxOptions{Clock: newFakeClock(), LED: sim})
	sim.Attach(b)
	b.Booted()
	b.SetFault(FaultConfig, errors.New(strings.Repeat("very long message ", 20)))
	sim.Set(Red)
	s := out.String()
	s = s[strings.LastIndex(s, "\x1b[0m")+len("\x1b[0m"):]
	if n := len([]rune(s)) + 1; n > statusWidth { // + the dot
		t.Fatalf("status line %d columns wide: %q", n, s)
	}
}
