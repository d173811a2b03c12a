package board

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Sim is the simulated board of a machine without GPIO (`make run` on a
// laptop): its LED is one updating line in the terminal, and its buttons
// are keys (ReadKeys) and the page's /api/sim/button (Push).
//
// A simulated press is applied at once with its length back-dated, so a
// ten-second "very long" press takes no ten seconds; the state machine
// classifies by the edges' times, not by waiting.
type Sim struct {
	out io.Writer
	tty bool

	mu    sync.Mutex
	box   *Box
	color Color
	last  string // the last line written
}

// NewSim returns a simulated board writing to out. With tty, the status
// is one line redrawn in place; without, a log line per change of state.
func NewSim(out io.Writer, tty bool) *Sim {
	return &Sim{out: out, tty: tty}
}

// Attach connects the board's buttons to a Box.
func (s *Sim) Attach(b *Box) {
	s.mu.Lock()
	s.box = b
	s.mu.Unlock()
}

// Set implements LED.
func (s *Sim) Set(c Color) error {
	s.mu.Lock()
	s.color = c
	s.mu.Unlock()
	s.render()
	return nil
}

// Color is the LED's current colour.
func (s *Sim) Color() Color {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.color
}

// SimPress is a simulated press: which button and how long.
type SimPress struct {
	Button string `json:"button"` // "a", "b" or "both"
	MS     int    `json:"ms"`
}

// MaxSimPress bounds a simulated press (a factory reset needs 10 s).
const MaxSimPress = time.Minute

// ParseSimPress decodes and checks a /api/sim/button body.
func ParseSimPress(data []byte) (SimPress, error) {
	var p SimPress
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return SimPress{}, fmt.Errorf("simulated press: %w", err)
	}
	switch p.Button {
	case "a", "b", "both":
	default:
		return SimPress{}, fmt.Errorf("simulated press: button %q is not a, b or both", p.Button)
	}
	if p.MS < 0 || time.Duration(p.MS)*time.Millisecond > MaxSimPress {
		return SimPress{}, fmt.Errorf("simulated press: ms %d is not between 0 and %d", p.MS, MaxSimPress.Milliseconds())
	}
	if p.MS == 0 {
		p.MS = 100 // a plain click
	}
	return p, nil
}

// ErrNotAttached reports a press before the Sim has a Box.
var ErrNotAttached = errors.New("simulated board not attached")

// Push applies a simulated press.
func (s *Sim) Push(p SimPress) error {
	s.mu.Lock()
	b := s.box
	s.mu.Unlock()
	if b == nil {
		return ErrNotAttached
	}
	var btns []Button
	switch p.Button {
	case "a":
		btns = []Button{ButtonA}
	case "b":
		btns = []Button{ButtonB}
	case "both":
		btns = []Button{ButtonA, ButtonB}
	default:
		return fmt.Errorf("simulated press: unknown button %q", p.Button)
	}
	now := b.clk.Now()
	for _, x := range btns {
		b.Press(x, now.Add(-time.Duration(p.MS)*time.Millisecond))
	}
	for _, x := range btns {
		b.Release(x, now)
	}
	return nil
}

// Keys maps terminal keys to presses (docs/board.md lists them).
var Keys = map[byte]SimPress{
	'a': {"a", 100},
	'A': {"a", 2000},
	'r': {"a", 10500},
	'b': {"b", 100},
	'B': {"b", 2000},
	'x': {"both", 300},
}

// KeyHelp is the one-line legend of Keys.
const KeyHelp = "keys a A b B x r"

// statusWidth bounds the status line: a line longer than the terminal
// wraps, and redrawing in place would then leave the wrapped rows behind.
const statusWidth = 78

// Key handles one key; unknown keys are ignored.
func (s *Sim) Key(k byte) {
	if p, ok := Keys[k]; ok {
		s.Push(p)
	}
}

var ansiColor = [...]string{"2;37", "31", "32", "33", "34", "35", "36", "97"}

// Writer returns a writer for the program's log that keeps the status line
// intact on a terminal: each write clears the line, writes the log text, and
// redraws the status below it.
func (s *Sim) Writer() io.Writer { return simLog{s} }

type simLog struct{ s *Sim }

func (w simLog) Write(p []byte) (int, error) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tty || s.last == "" {
		return s.out.Write(p)
	}
	io.WriteString(s.out, "\r\x1b[K")
	n, err := s.out.Write(p)
	io.WriteString(s.out, s.last)
	return n, err
}

// Close ends the status line, so the shell's prompt starts on a line of
// its own.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty && s.last != "" {
		io.WriteString(s.out, "\n")
		s.last = ""
	}
}

// Refresh redraws the status; pass it as BoxOptions.OnRefresh.
func (s *Sim) Refresh() { s.render() }

// render draws the status line (TTY) or logs a change (not a TTY).
func (s *Sim) render() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.box == nil {
		return
	}
	st := s.box.Status()
	desc := fmt.Sprintf("%s | LED %s | %d phones | %d paired", st.State, st.LED.Name, st.Viewers, s.box.Paired())
	if st.Waiting > 0 {
		desc += fmt.Sprintf(" | %d waiting", st.Waiting)
	}
	if st.Message != "" {
		desc += " | " + st.Message
	}
	if !s.tty {
		if desc != s.last {
			fmt.Fprintf(s.out, "callbox board (simulated): state %s\n", desc)
			s.last = desc
		}
		return
	}
	if st.State == Booting {
		// The appliance prints the page's address while booting (plain
		// stdout); drawing starts after, so that line stays readable.
		return
	}
	dot := "●"
	if s.color == Off {
		dot = "○"
	}
	text := desc + " | " + KeyHelp
	if r := []rune(text); len(r) > statusWidth-2 {
		text = string(r[:statusWidth-3]) + "…"
	}
	line := fmt.Sprintf("\r\x1b[K\x1b[%sm%s\x1b[0m %s", ansiColor[s.color&White], dot, text)
	if line != s.last {
		io.WriteString(s.out, line)
		s.last = line
	}
}
