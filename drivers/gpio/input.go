package gpio

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// DefaultDebounce is long enough for the contact bounce of common tactile
// switches (typically 1-10 ms) with margin, and short enough that a press
// still feels immediate.
const DefaultDebounce = 30 * time.Millisecond

// idlePoll bounds how long the edge loop blocks while nothing happens, so
// that Close is noticed even when a Halt raced with the start of a wait.
const idlePoll = 250 * time.Millisecond

// InputOptions configure an Input. The zero value is a usable
// active-high input with no bias and DefaultDebounce.
type InputOptions struct {
	// Debounce is how long the level must stay unchanged after an edge
	// before the change is reported. Zero means DefaultDebounce.
	Debounce time.Duration
	// ActiveLow inverts the logic: a button that pulls the line to ground
	// reports Active=true when pressed.
	ActiveLow bool
	// Pull is the bias requested from the kernel. The zero value
	// (PullNoChange) and gpio.Float request no bias, which is right for
	// the board's externally pulled buttons; see the package doc.
	Pull gpio.Pull
	// Clock defaults to the wall clock.
	Clock Clock
}

type input struct {
	line     Line
	clk      Clock
	debounce time.Duration
	inv      bool
	release  func() error

	events  chan Edge
	stable  atomic.Bool
	closed  atomic.Bool
	dropped atomic.Uint64
	done    chan struct{}
	once    sync.Once
	err     error
}

// NewInput configures line as an input with both-edge detection and starts
// debouncing it. The caller keeps ownership of line; use OpenInput for a
// line found by name, which also releases it on Close.
func NewInput(line Line, opts InputOptions) (Input, error) {
	return newInput(line, opts, nil)
}

func newInput(line Line, opts InputOptions, release func() error) (*input, error) {
	if line == nil {
		return nil, fmt.Errorf("gpio: NewInput: nil line")
	}
	if opts.Debounce < 0 {
		return nil, fmt.Errorf("gpio: negative debounce %v", opts.Debounce)
	}
	if opts.Debounce == 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Clock == nil {
		opts.Clock = wallClock{}
	}
	if err := line.In(opts.Pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("gpio: configure input: %w", err)
	}
	in := &input{
		line:     line,
		clk:      opts.Clock,
		debounce: opts.Debounce,
		inv:      opts.ActiveLow,
		release:  release,
		// A button produces a few events per second at most; the buffer
		// absorbs a consumer that is briefly busy.
		events: make(chan Edge, 32),
		done:   make(chan struct{}),
	}
	in.stable.Store(in.logical(line.Read()))
	go in.run()
	return in, nil
}

func (in *input) logical(l gpio.Level) bool { return bool(l) != in.inv }

// run waits for a raw edge, then waits until the line has been quiet for the
// debounce interval (each further edge restarts the wait), then samples the
// level once. A pulse shorter than the interval that returns to the old
// level produces no event.
func (in *input) run() {
	defer close(in.done)
	defer close(in.events)
	for !in.closed.Load() {
		start := in.clk.Now()
		if !in.line.WaitForEdge(idlePoll) {
			// A line whose wait fails at once (a broken request) must not
			// spin the CPU; a normal timeout took idlePoll already.
			if !in.closed.Load() && in.clk.Now().Sub(start) < idlePoll/2 {
				time.Sleep(idlePoll)
			}
			continue
		}
		first := in.clk.Now()
		last := first
		for !in.closed.Load() {
			rem := in.debounce - in.clk.Now().Sub(last)
			if rem <= 0 {
				break
			}
			if in.line.WaitForEdge(rem) {
				last = in.clk.Now()
			}
		}
		if in.closed.Load() {
			return
		}
		lvl := in.logical(in.line.Read())
		if lvl == in.stable.Load() {
			continue
		}
		in.stable.Store(lvl)
		select {
		case in.events <- Edge{Active: lvl, Time: first}:
		default:
			// Never block the edge loop on a stalled consumer: it would
			// miss the next edges. Read still reports the level.
			in.dropped.Add(1)
		}
	}
}

func (in *input) Events() <-chan Edge { return in.events }

func (in *input) Read() bool { return in.stable.Load() }

// Dropped reports events lost because the consumer did not read Events.
func (in *input) Dropped() uint64 { return in.dropped.Load() }

func (in *input) Close() error {
	in.once.Do(func() {
		in.closed.Store(true)
		_ = in.line.Halt()
		<-in.done
		if in.release != nil {
			in.err = in.release()
		}
	})
	return in.err
}

// OutputOptions configure an Output.
type OutputOptions struct {
	// ActiveLow drives the line low for on (an LED wired to 3V3).
	ActiveLow bool
}

type output struct {
	mu      sync.Mutex
	line    OutLine
	inv     bool
	release func() error
	closed  bool
}

// NewOutput drives line as an output, starting off.
func NewOutput(line OutLine, opts OutputOptions) (Output, error) {
	return newOutput(line, opts, nil)
}

func newOutput(line OutLine, opts OutputOptions, release func() error) (*output, error) {
	if line == nil {
		return nil, fmt.Errorf("gpio: NewOutput: nil line")
	}
	o := &output{line: line, inv: opts.ActiveLow, release: release}
	if err := o.Set(false); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *output) Set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if err := o.line.Out(gpio.Level(on != o.inv)); err != nil {
		return fmt.Errorf("gpio: set output: %w", err)
	}
	return nil
}

// Close switches the output off (a box that stops must not leave a light
// claiming a state) and releases the line.
func (o *output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	err := o.line.Out(gpio.Level(o.inv))
	o.closed = true
	if o.release != nil {
		if rerr := o.release(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("gpio: close output: %w", err)
	}
	return nil
}
