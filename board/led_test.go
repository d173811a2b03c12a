package board

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// monoRhythm is what a single-colour LED shows of p: on/off runs, merged,
// rotated to start at the longest "on" run so that phase does not matter.
func monoRhythm(p Pattern) string {
	type run struct {
		on bool
		d  time.Duration
	}
	var runs []run
	for _, s := range p.Steps {
		on := s.Color != Off
		if len(runs) > 0 && runs[len(runs)-1].on == on {
			runs[len(runs)-1].d += s.D
			continue
		}
		runs = append(runs, run{on, s.D})
	}
	if len(runs) > 1 && runs[0].on == runs[len(runs)-1].on {
		runs[0].d += runs[len(runs)-1].d
		runs = runs[:len(runs)-1]
	}
	best := 0
	for i, r := range runs {
		if r.on && r.d > runs[best].d {
			best = i
		}
	}
	out := ""
	for i := range runs {
		r := runs[(best+i)%len(runs)]
		out += fmt.Sprintf("%v:%v ", r.on, r.d)
	}
	return out
}

// A person must tell every state apart by eye: on a single-colour LED by
// rhythm alone, with no flicker too fast to see.
func TestPatternsDistinct(t *testing.T) {
	seenName := map[string]bool{}
	seenRhythm := map[string]string{}
	for _, p := range Patterns() {
		if seenName[p.Name] {
			t.Errorf("pattern name %q twice", p.Name)
		}
		seenName[p.Name] = true
		r := monoRhythm(p)
		if other, ok := seenRhythm[r]; ok {
			t.Errorf("%s and %s look the same on a single-colour LED: %s", p.Name, other, r)
		}
		seenRhythm[r] = p.Name
		if len(p.Steps) > 1 {
			for _, s := range p.Steps {
				if s.D < 50*time.Millisecond {
					t.Errorf("%s has a %v step: too fast to see", p.Name, s.D)
				}
			}
		}
	}
}

func TestPatternAt(t *testing.T) {
	p := Pattern{"test", []Step{{Blue, ms(100)}, {Off, ms(100)}, {Blue, ms(100)}, {Off, ms(700)}}}
	tests := []struct {
		at   time.Duration
		c    Color
		left time.Duration
	}{
		{0, Blue, ms(100)}, {ms(99), Blue, ms(1)}, {ms(100), Off, ms(100)}, {ms(250), Blue, ms(50)},
		{ms(300), Off, ms(700)}, {ms(1000), Blue, ms(100)}, {ms(10_350), Off, ms(650)}, {-ms(5), Blue, ms(100)},
	}
	for _, tt := range tests {
		c, left := p.At(tt.at)
		if c != tt.c || left != tt.left {
			t.Errorf("At(%v) = %v %v, want %v %v", tt.at, c, left, tt.c, tt.left)
		}
	}
	if c, left := PatternReady.At(time.Hour); c != Green || left != 0 {
		t.Errorf("steady pattern: %v %v", c, left)
	}
}

type change struct {
	at time.Duration
	c  Color
}

// recLED records every colour change with the fake time it happened.
type recLED struct {
	mu      sync.Mutex
	clk     *fakeClock
	t0      time.Time
	changes []change
}

func (l *recLED) Set(c Color) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, change{l.clk.Now().Sub(l.t0), c})
	return nil
}

func (l *recLED) get() []change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]change(nil), l.changes...)
}

// settle waits until the player goroutine sleeps on the fake clock again.
func settle(t *testing.T, clk *fakeClock, timers int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.pending() < timers {
		if time.Now().After(deadline) {
			t.Fatal("player did not go back to sleep")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// The player reproduces a pattern's timing exactly and switches patterns
// at once.
func TestPlayerTiming(t *testing.T) {
	clk := newFakeClock()
	led := &recLED{clk: clk, t0: clk.Now()}
	p := NewPlayer(led, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	p.Show(PatternError)
	settle(t, clk, 1)
	// Step through two periods of the error pattern, 10 ms at a time.
	for i := 0; i < 2*int(PatternError.Period()/ms(10)); i++ {
		clk.Advance(ms(10))
		settle(t, clk, 1)
	}
	want := []change{}
	at := time.Duration(0)
	for rep := 0; rep < 2; rep++ {
		for _, s := range PatternError.Steps {
			want = append(want, change{at, s.Color})
			at += s.D
		}
	}
	want = append(want, change{at, Red})
	got := led.get()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("error pattern played as\n%v\nwant\n%v", got, want)
	}
	// Showing the same pattern again does not restart it; a new one
	// starts at once.
	p.Show(PatternError)
	p.Show(PatternReady)
	deadline := time.Now().Add(5 * time.Second)
	for last := led.get(); last[len(last)-1].c != Green; last = led.get() {
		if time.Now().After(deadline) {
			t.Fatal("new pattern not shown")
		}
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	<-done
	got = led.get()
	if got[len(got)-1].c != Off {
		t.Fatal("LED not switched off at the end")
	}
}

type fakeSwitch struct{ on bool }

func (s *fakeSwitch) Set(on bool) error { s.on = on; return nil }

func TestLEDAdapters(t *testing.T) {
	var r, g, b, m fakeSwitch
	rgb := RGBLED{&r, &g, &b}
	mono := MonoLED{&m}
	for c := Off; c <= White; c++ {
		rgb.Set(c)
		mono.Set(c)
		if r.on != (c&Red != 0) || g.on != (c&Green != 0) || b.on != (c&Blue != 0) || m.on != (c != Off) {
			t.Errorf("%v: rgb %v %v %v mono %v", c, r.on, g.on, b.on, m.on)
		}
	}
}

// docs/board.md documents every pattern by name; a new pattern must be
// added to its table.
func TestPatternsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "board.md"))
	if err != nil {
		t.Fatalf("docs/board.md: %v", err)
	}
	for _, p := range Patterns() {
		if !strings.Contains(string(doc), "`"+p.Name+"`") && !strings.HasPrefix(p.Name, "streaming-") {
			t.Errorf("pattern %s missing from docs/board.md", p.Name)
		}
	}
}
