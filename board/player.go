package board

import (
	"context"
	"errors"
	"sync"
	"time"
)

// LED shows one colour at a time.
type LED interface {
	Set(c Color) error
}

// Switch is an on/off output: drivers/gpio.Output satisfies it.
type Switch interface {
	Set(on bool) error
}

// MonoLED drives a single-colour LED: on for every colour but Off.
type MonoLED struct{ Switch Switch }

// Set implements LED.
func (l MonoLED) Set(c Color) error { return l.Switch.Set(c != Off) }

// RGBLED drives the three dies of an RGB LED.
type RGBLED struct{ R, G, B Switch }

// Set implements LED.
func (l RGBLED) Set(c Color) error {
	return errors.Join(l.R.Set(c&Red != 0), l.G.Set(c&Green != 0), l.B.Set(c&Blue != 0))
}

// Player plays patterns on an LED. Show may be called from any goroutine;
// Run does the timing.
type Player struct {
	led LED
	clk Clock
	// OnError, if set, hears LED write failures (a removed HAT, a
	// released line); the player keeps going, since the next write may work.
	OnError func(error)

	mu      sync.Mutex
	pending *Pattern
	notify  chan struct{}
}

// NewPlayer returns a Player for led; call Run to start it.
func NewPlayer(led LED, clk Clock) *Player {
	return &Player{led: led, clk: clk, notify: make(chan struct{}, 1)}
}

// Show switches to pat. Showing the pattern already playing keeps its
// rhythm going rather than restarting it, so status polls do not stutter
// the LED.
func (p *Player) Show(pat Pattern) {
	p.mu.Lock()
	p.pending = &pat
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Run plays until ctx ends, then switches the LED off.
func (p *Player) Run(ctx context.Context) {
	var (
		cur   Pattern
		have  bool
		start time.Time
		last  Color
		shown bool
	)
	defer func() { p.set(Off) }()
	for {
		var wait <-chan time.Time
		if have {
			c, left := cur.At(p.clk.Now().Sub(start))
			if !shown || c != last {
				p.set(c)
				last, shown = c, true
			}
			if left > 0 {
				wait = p.clk.After(left)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.notify:
			p.mu.Lock()
			next := p.pending
			p.pending = nil
			p.mu.Unlock()
			if next != nil && (!have || next.Name != cur.Name) {
				cur, have, start = *next, true, p.clk.Now()
				shown = false
			}
		case <-wait:
		}
	}
}

func (p *Player) set(c Color) {
	if err := p.led.Set(c); err != nil && p.OnError != nil {
		p.OnError(err)
	}
}
