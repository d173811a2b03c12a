// Package gpiotest provides fakes for drivers/gpio, in the manner of
// periph's gpiotest: a raw Pin with an injectable Clock for testing the
// debouncer, and ready-made Input and Output fakes for consumers (the board
// package) that only want to press buttons and watch lights.
package gpiotest

import (
	"errors"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	cbgpio "github.com/callbox/callbox/drivers/gpio"
)

// Clock is a manual clock. Time moves only through Advance.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan struct{} // closed and replaced on every Advance
}

// NewClock returns a Clock set to a fixed, arbitrary instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), tick: make(chan struct{})}
}

// Now implements drivers/gpio.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves time forward and wakes everything waiting on the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	close(c.tick)
	c.tick = make(chan struct{})
	c.mu.Unlock()
}

// changed returns a channel closed by the next Advance.
func (c *Clock) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tick
}

// Pin is a fake GPIO line implementing drivers/gpio.Line and OutLine. The
// test drives its level with Set; edges are queued like the kernel's line
// event FIFO, and WaitForEdge's timeout runs on Clock.
type Pin struct {
	Clock *Clock

	mu      sync.Mutex
	level   gpio.Level
	pull    gpio.Pull
	edge    gpio.Edge
	input   bool
	queue   int
	halted  bool
	waiting int
	waitOn  <-chan struct{} // the clock tick the blocked WaitForEdge sleeps on
	wake    chan struct{}
	outs    []gpio.Level
}

// NewPin returns a pin at level l driven by clk.
func NewPin(clk *Clock, l gpio.Level) *Pin {
	return &Pin{Clock: clk, level: l, wake: make(chan struct{}, 1)}
}

// In implements gpio.PinIn.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pull, p.edge, p.input, p.queue = pull, edge, true, 0
	return nil
}

// Pull reports the bias last requested by In.
func (p *Pin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// Read implements gpio.PinIn.
func (p *Pin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// Set changes the input level; a change queues an edge when the pin was
// configured for that edge.
func (p *Pin) Set(l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.level {
		return
	}
	p.level = l
	if p.input && (p.edge == gpio.BothEdges || (p.edge == gpio.RisingEdge && bool(l)) || (p.edge == gpio.FallingEdge && !bool(l))) {
		p.queue++
		p.poke()
	}
}

// Bounce sets each level in turn, as a bouncing contact does.
func (p *Pin) Bounce(levels ...gpio.Level) {
	for _, l := range levels {
		p.Set(l)
	}
}

func (p *Pin) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// WaitForEdge implements gpio.PinIn with the timeout measured on Clock.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	deadline := p.Clock.Now().Add(timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.queue > 0 {
			p.queue--
			return true
		}
		if p.halted {
			p.halted = false
			return false
		}
		tick := p.Clock.changed()
		if !p.Clock.Now().Before(deadline) {
			return false
		}
		p.waiting++
		p.waitOn = tick
		p.mu.Unlock()
		select {
		case <-tick:
		case <-p.wake:
		}
		p.mu.Lock()
		p.waiting--
	}
}

// Halt implements gpio.PinIn. Unlike the kernel line it is sticky until the
// next WaitForEdge, so a test cannot lose it to a race.
func (p *Pin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted = true
	p.poke()
	return nil
}

// Idle reports whether a WaitForEdge is blocked with no edge pending and
// has already seen the latest Advance: the state in which the next Set or
// Advance is meaningful.
func (p *Pin) Idle() bool {
	tick := p.Clock.changed()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting > 0 && p.queue == 0 && p.waitOn == tick
}

// WaitIdle waits (in real time, up to timeout) until Idle.
func (p *Pin) WaitIdle(timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for !p.Idle() {
		if time.Now().After(end) {
			return errors.New("gpiotest: pin never became idle (no WaitForEdge blocked)")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Out implements gpio.PinOut and records the level.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.input = false
	p.level = l
	p.outs = append(p.outs, l)
	return nil
}

// Outs returns every level written with Out.
func (p *Pin) Outs() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gpio.Level(nil), p.outs...)
}

// Input is a fake drivers/gpio.Input for consumers' tests.
type Input struct {
	mu     sync.Mutex
	level  bool
	ch     chan cbgpio.Edge
	closed bool
}

// NewInput returns an inactive fake input.
func NewInput() *Input { return &Input{ch: make(chan cbgpio.Edge, 32)} }

// Send delivers a debounced edge, as the real input would after a press
// or release. Sending on a closed Input is ignored.
func (in *Input) Send(active bool, at time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	in.level = active
	in.ch <- cbgpio.Edge{Active: active, Time: at}
}

// Press sends an active edge now.
func (in *Input) Press() { in.Send(true, time.Now()) }

// Release sends an inactive edge now.
func (in *Input) Release() { in.Send(false, time.Now()) }

// Events implements drivers/gpio.Input.
func (in *Input) Events() <-chan cbgpio.Edge { return in.ch }

// Read implements drivers/gpio.Input.
func (in *Input) Read() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.level
}

// Close implements drivers/gpio.Input.
func (in *Input) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed {
		in.closed = true
		close(in.ch)
	}
	return nil
}

// Output is a fake drivers/gpio.Output that records what it was told.
type Output struct {
	mu     sync.Mutex
	on     bool
	hist   []bool
	closed bool
	// Err, when set, is returned by Set (a failing line).
	Err error
}

// NewOutput returns an off fake output.
func NewOutput() *Output { return &Output{} }

// Set implements drivers/gpio.Output.
func (o *Output) Set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return cbgpio.ErrClosed
	}
	if o.Err != nil {
		return o.Err
	}
	o.on = on
	o.hist = append(o.hist, on)
	return nil
}

// On reports the current state.
func (o *Output) On() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.on
}

// History returns every value passed to Set, in order.
func (o *Output) History() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]bool(nil), o.hist...)
}

// Closed reports whether Close was called.
func (o *Output) Closed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// Close implements drivers/gpio.Output; like the real one it switches off.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.on = false
	return nil
}

var (
	_ cbgpio.Line    = (*Pin)(nil)
	_ cbgpio.OutLine = (*Pin)(nil)
	_ cbgpio.Input   = (*Input)(nil)
	_ cbgpio.Output  = (*Output)(nil)
	_ cbgpio.Clock   = (*Clock)(nil)
)
