package board

import (
	"fmt"
	"strings"
	"time"
)

// Color is an RGB LED's colour, one bit per die. A single-colour LED is on
// for any colour but Off.
type Color uint8

// The eight colours an RGB LED can show without PWM.
const (
	Off     Color = 0
	Red     Color = 1
	Green   Color = 2
	Yellow  Color = Red | Green
	Blue    Color = 4
	Magenta Color = Red | Blue
	Cyan    Color = Green | Blue
	White   Color = Red | Green | Blue
)

var colorNames = [...]string{"off", "red", "green", "yellow", "blue", "magenta", "cyan", "white"}

func (c Color) String() string {
	if int(c) < len(colorNames) {
		return colorNames[c]
	}
	return fmt.Sprintf("Color(%d)", uint8(c))
}

// Step is one segment of a pattern: a colour held for a duration.
type Step struct {
	Color Color
	D     time.Duration
}

// Pattern is a named, endlessly repeating sequence of steps. A pattern with
// one step is a steady light.
type Pattern struct {
	Name  string
	Steps []Step
}

// Period is the length of one repetition.
func (p Pattern) Period() time.Duration {
	var d time.Duration
	for _, s := range p.Steps {
		d += s.D
	}
	return d
}

// At returns the colour shown elapsed after the pattern started, and how
// long that colour stays before the next change (0 for a steady light).
func (p Pattern) At(elapsed time.Duration) (Color, time.Duration) {
	if len(p.Steps) == 0 {
		return Off, 0
	}
	if len(p.Steps) == 1 {
		return p.Steps[0].Color, 0
	}
	per := p.Period()
	if per <= 0 {
		return p.Steps[0].Color, 0
	}
	if elapsed < 0 {
		elapsed = 0
	}
	t := elapsed % per
	for _, s := range p.Steps {
		if t < s.D {
			return s.Color, s.D - t
		}
		t -= s.D
	}
	return p.Steps[0].Color, p.Steps[0].D // unreachable: t < per
}

// String renders the pattern compactly, e.g. "pairing: blue 100ms, off 100ms, ...".
func (p Pattern) String() string {
	parts := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		parts[i] = fmt.Sprintf("%v %v", s.Color, s.D)
	}
	return p.Name + ": " + strings.Join(parts, ", ")
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// MaxStreamingBlips caps the "number of phones" blips: more than five dark
// gaps in a row cannot be counted at a glance.
const MaxStreamingBlips = 5

// The patterns. Each differs from every other in rhythm alone, so a
// single-colour LED tells the states apart too; colour is a second cue on
// an RGB LED. TestPatternsDistinct holds this.
var (
	PatternBooting = Pattern{"booting", []Step{{White, ms(80)}, {Off, ms(420)}}}
	PatternReady   = Pattern{"ready", []Step{{Green, 0}}}
	PatternPairing = PairingPattern(1)
	PatternCalling = Pattern{"calling", []Step{{Green, ms(250)}, {Off, ms(250)}}}
	PatternDirect  = Pattern{"in-call-direct", []Step{{Cyan, ms(1000)}, {Off, ms(1000)}}}
	PatternRelayed = Pattern{"in-call-relayed", []Step{{Magenta, ms(1000)}, {Off, ms(200)}, {Magenta, ms(200)}, {Off, ms(600)}}}
	PatternMuted   = Pattern{"muted", []Step{{Red, ms(100)}, {Off, ms(1900)}}}
	PatternError   = Pattern{"error", []Step{{Red, ms(100)}, {Off, ms(100)}, {Red, ms(100)}, {Off, ms(100)}, {Red, ms(100)}, {Off, ms(900)}}}
	PatternReset   = Pattern{"reset", []Step{{Red, ms(50)}, {Off, ms(50)}}}
	// PatternBoxPairing: a pairing with another box waits for this
	// owner's confirmation (A+B), blue and white.
	PatternBoxPairing = Pattern{"box-pairing", []Step{{Blue, ms(200)}, {White, ms(200)}, {Off, ms(200)}, {Blue, ms(200)}, {White, ms(200)}, {Off, ms(1000)}}}
	// PatternRinging: a paired box calls (green, white: a ring's rhythm).
	PatternRinging = Pattern{"ringing", []Step{{Green, ms(150)}, {White, ms(150)}, {Green, ms(150)}, {Off, ms(550)}}}
	// PatternUpdating: an update is being checked or written (long, short).
	PatternUpdating = Pattern{"updating", []Step{{White, ms(600)}, {Off, ms(200)}, {White, ms(200)}, {Off, ms(200)}}}
)

// StreamingPattern is yellow, mostly on, with one short dark gap per phone
// watching (up to MaxStreamingBlips) every cycle.
func StreamingPattern(viewers int) Pattern {
	n := min(max(viewers, 1), MaxStreamingBlips)
	steps := []Step{{Yellow, ms(1500)}}
	for i := 0; i < n; i++ {
		if i > 0 {
			steps = append(steps, Step{Yellow, ms(250)})
		}
		steps = append(steps, Step{Off, ms(150)})
	}
	return Pattern{fmt.Sprintf("streaming-%d", n), steps}
}

// MaxPairingBlips bounds the pairing pattern's count: beyond it the person
// at the box sees "many", which is reason enough not to press.
const MaxPairingBlips = 8

// PairingPattern is blue: a long flash that says "pairing", then one short
// flash per phone waiting to pair (up to MaxPairingBlips), then a pause,
// so the person at the box sees how many phones one press of both buttons
// will admit. One phone: PatternPairing.
func PairingPattern(waiting int) Pattern {
	n := min(max(waiting, 1), MaxPairingBlips)
	steps := []Step{{Blue, ms(600)}, {Off, ms(400)}}
	for i := 0; i < n; i++ {
		steps = append(steps, Step{Blue, ms(100)}, Step{Off, ms(300)})
	}
	steps[len(steps)-1] = Step{Off, ms(1000)}
	return Pattern{"pairing", steps}
}

// Patterns lists every pattern the LED can show, for docs and tests.
func Patterns() []Pattern {
	out := []Pattern{PatternBooting, PatternReady}
	for n := 1; n <= MaxStreamingBlips; n++ {
		out = append(out, StreamingPattern(n))
	}
	return append(out, PatternPairing, PatternBoxPairing, PatternCalling, PatternRinging, PatternDirect, PatternRelayed, PatternMuted, PatternError, PatternReset, PatternUpdating)
}
