package gpio_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	cbgpio "github.com/callbox/callbox/drivers/gpio"
	"github.com/callbox/callbox/drivers/gpio/gpiotest"
)

const debounce = 20 * time.Millisecond

func newInput(t *testing.T, initial gpio.Level, opts cbgpio.InputOptions) (*gpiotest.Pin, *gpiotest.Clock, cbgpio.Input) {
	t.Helper()
	clk := gpiotest.NewClock()
	pin := gpiotest.NewPin(clk, initial)
	opts.Clock = clk
	if opts.Debounce == 0 {
		opts.Debounce = debounce
	}
	in, err := cbgpio.NewInput(pin, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	idle(t, pin)
	return pin, clk, in
}

func idle(t *testing.T, pin *gpiotest.Pin) {
	t.Helper()
	if err := pin.WaitIdle(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, in cbgpio.Input) cbgpio.Edge {
	t.Helper()
	select {
	case e, ok := <-in.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return cbgpio.Edge{}
}

func none(t *testing.T, in cbgpio.Input) {
	t.Helper()
	select {
	case e := <-in.Events():
		t.Fatalf("unexpected event %+v", e)
	default:
	}
}

func TestBouncyPressIsOneEvent(t *testing.T) {
	pin, clk, in := newInput(t, gpio.High, cbgpio.InputOptions{ActiveLow: true})
	if in.Read() {
		t.Fatal("released button reads active")
	}
	pressAt := clk.Now()
	pin.Bounce(gpio.Low, gpio.High, gpio.Low, gpio.High, gpio.Low)
	idle(t, pin)
	// Each bounce 5 ms apart keeps the level from settling.
	for i := 0; i < 3; i++ {
		clk.Advance(5 * time.Millisecond)
		idle(t, pin)
		pin.Bounce(gpio.High, gpio.Low)
		idle(t, pin)
	}
	none(t, in)
	clk.Advance(debounce - time.Millisecond)
	idle(t, pin)
	none(t, in)
	clk.Advance(time.Millisecond)
	e := next(t, in)
	if !e.Active || !e.Time.Equal(pressAt) {
		t.Fatalf("got %+v, want active at %v", e, pressAt)
	}
	idle(t, pin)
	clk.Advance(time.Second)
	idle(t, pin)
	none(t, in)
	if !in.Read() {
		t.Fatal("pressed button reads inactive")
	}
	// Release, clean.
	pin.Set(gpio.High)
	idle(t, pin)
	clk.Advance(debounce)
	if e := next(t, in); e.Active {
		t.Fatalf("release reported as %+v", e)
	}
}

func TestGlitchShorterThanDebounceIsIgnored(t *testing.T) {
	pin, clk, in := newInput(t, gpio.Low, cbgpio.InputOptions{})
	pin.Set(gpio.High)
	idle(t, pin)
	clk.Advance(debounce / 2)
	idle(t, pin)
	pin.Set(gpio.Low)
	idle(t, pin)
	clk.Advance(2 * debounce)
	idle(t, pin)
	none(t, in)
	if in.Read() {
		t.Fatal("glitch changed the level")
	}
}

func TestInputRequestsNoBias(t *testing.T) {
	pin, _, _ := newInput(t, gpio.Low, cbgpio.InputOptions{})
	if p := pin.Pull(); p == gpio.PullUp || p == gpio.PullDown {
		t.Fatalf("input requested bias %v; the board's buttons have external pulls", p)
	}
}

func TestCloseEndsEvents(t *testing.T) {
	before := runtime.NumGoroutine()
	_, _, in := newInput(t, gpio.Low, cbgpio.InputOptions{})
	done := make(chan error)
	go func() { done <- in.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if _, ok := <-in.Events(); ok {
		t.Fatal("events still open")
	}
	if err := in.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The edge loop has ended: no goroutine outlives the input.
	for end := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadInputOptions(t *testing.T) {
	if _, err := cbgpio.NewInput(nil, cbgpio.InputOptions{}); err == nil {
		t.Fatal("nil line accepted")
	}
	pin := gpiotest.NewPin(gpiotest.NewClock(), gpio.Low)
	if _, err := cbgpio.NewInput(pin, cbgpio.InputOptions{Debounce: -time.Second}); err == nil {
		t.Fatal("negative debounce accepted")
	}
}

func TestOutputActiveLowAndClose(t *testing.T) {
	pin := gpiotest.NewPin(gpiotest.NewClock(), gpio.Low)
	o, err := cbgpio.NewOutput(pin, cbgpio.OutputOptions{ActiveLow: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Set(true); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	want := []gpio.Level{gpio.High, gpio.Low, gpio.High} // off, on, off at Close
	got := pin.Outs()
	if len(got) != len(want) {
		t.Fatalf("levels %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("levels %v, want %v", got, want)
		}
	}
	if err := o.Set(true); !errors.Is(err, cbgpio.ErrClosed) {
		t.Fatalf("Set after Close: %v", err)
	}
}

func TestLEDClass(t *testing.T) {
	dir := t.TempDir()
	act := filepath.Join(dir, "ACT")
	if err := os.MkdirAll(act, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"max_brightness": "255\n", "brightness": "0\n", "trigger": "none [mmc0] heartbeat\n"} {
		if err := os.WriteFile(filepath.Join(act, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := cbgpio.LEDClass{Dir: dir}
	names, err := c.List()
	if err != nil || len(names) != 1 || names[0] != "ACT" {
		t.Fatalf("List = %v, %v", names, err)
	}
	led, err := c.Open("ACT")
	if err != nil {
		t.Fatal(err)
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(act, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("trigger"); got != "none" {
		t.Fatalf("trigger %q: kernel trigger not released", got)
	}
	if err := led.Set(true); err != nil {
		t.Fatal(err)
	}
	if got := read("brightness"); got != "255" {
		t.Fatalf("on: brightness %q", got)
	}
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read("brightness"); got != "0" {
		t.Fatalf("after Close: brightness %q", got)
	}
	if _, err := c.Open("PWR"); !errors.Is(err, cbgpio.ErrNotFound) {
		t.Fatalf("missing LED: %v", err)
	}
	if _, err := c.Open("../ACT"); err == nil {
		t.Fatal("path in LED name accepted")
	}
	if names, err := (cbgpio.LEDClass{Dir: filepath.Join(dir, "none")}).List(); err != nil || len(names) != 0 {
		t.Fatalf("no LED class: %v, %v", names, err)
	}
}
