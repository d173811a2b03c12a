// Command hilgpio runs in the HIL VM against a gpio-sim chip, through the
// real drivers/gpio (periph gpioioctl): a simulated button press, bouncing
// contacts included, must arrive as exactly one debounced event, a glitch
// shorter than the debounce interval as none, and an output line the driver
// switches must be seen by the simulator.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cbgpio "github.com/callbox/callbox/drivers/gpio"
)

func main() {
	sys := flag.String("sys", os.Getenv("HIL_GPIOSIM"), "gpio-sim chip directory in sysfs")
	in := flag.String("in", "sim-in", "input line name")
	inOff := flag.Int("in-offset", 0, "input line offset on the sim chip")
	out := flag.String("out", "sim-out", "output line name")
	outOff := flag.Int("out-offset", 1, "output line offset on the sim chip")
	n := flag.Int("n", 5, "presses")
	flag.Parse()
	if err := run(*sys, *in, *inOff, *out, *outOff, *n); err != nil {
		fmt.Println("GPIO FAIL:", err)
		os.Exit(1)
	}
}

func run(sys, inName string, inOff int, outName string, outOff, presses int) error {
	if sys == "" {
		return fmt.Errorf("no gpio-sim sysfs directory (-sys or $HIL_GPIOSIM)")
	}
	chips, err := cbgpio.Chips()
	if err != nil {
		return err
	}
	fmt.Printf("chips: %+v\n", chips)
	attr := func(off int, name string) string { return filepath.Join(sys, fmt.Sprintf("sim_gpio%d", off), name) }
	pull := func(up bool) error {
		v := "pull-down"
		if up {
			v = "pull-up"
		}
		return os.WriteFile(attr(inOff, "pull"), []byte(v), 0)
	}
	if err := pull(false); err != nil {
		return err
	}
	const debounce = 50 * time.Millisecond
	// No bias (the zero Pull): a bias request would itself move gpio-sim's line.
	in, err := cbgpio.OpenInput(inName, cbgpio.InputOptions{Debounce: debounce})
	if err != nil {
		return err
	}
	defer in.Close()
	if in.Read() {
		return fmt.Errorf("input reads active with the line pulled down")
	}
	// events collects what arrives within d.
	events := func(d time.Duration) []cbgpio.Edge {
		var got []cbgpio.Edge
		end := time.After(d)
		for {
			select {
			case e := <-in.Events():
				got = append(got, e)
			case <-end:
				return got
			}
		}
	}
	var worst time.Duration
	for i := 0; i < presses; i++ {
		for _, active := range []bool{true, false} {
			t0 := time.Now()
			// A bouncing contact: the level flips a few times within a
			// millisecond or two before it settles.
			for _, lv := range []bool{active, !active, active, !active, active} {
				if err := pull(lv); err != nil {
					return err
				}
			}
			got := events(debounce + 400*time.Millisecond)
			if len(got) != 1 || got[0].Active != active {
				return fmt.Errorf("press %d: want exactly one event active=%v, got %+v", i, active, got)
			}
			if d := got[0].Time.Sub(t0); d > worst {
				worst = d
			}
			if in.Read() != active {
				return fmt.Errorf("press %d: Read()=%v after event active=%v", i, in.Read(), active)
			}
		}
	}
	fmt.Printf("GPIO IN PASS: %d bouncy presses and releases, one event each, worst edge latency %v\n", presses, worst.Round(time.Millisecond))
	// A glitch: up and straight back down, far shorter than the debounce.
	if err := pull(true); err != nil {
		return err
	}
	if err := pull(false); err != nil {
		return err
	}
	if got := events(debounce + 300*time.Millisecond); len(got) != 0 {
		return fmt.Errorf("glitch produced events %+v", got)
	}
	fmt.Println("GPIO GLITCH PASS: a pulse shorter than the debounce produced no event")

	o, err := cbgpio.OpenOutput(outName, cbgpio.OutputOptions{})
	if err != nil {
		return err
	}
	defer o.Close()
	for i := 0; i < 2*presses; i++ {
		on := i%2 == 0
		if err := o.Set(on); err != nil {
			return err
		}
		b, err := os.ReadFile(attr(outOff, "value"))
		if err != nil {
			return err
		}
		want := map[bool]string{true: "1", false: "0"}[on]
		if got := strings.TrimSpace(string(b)); got != want {
			return fmt.Errorf("output set %v, simulator sees %q", on, got)
		}
	}
	fmt.Printf("GPIO OUT PASS: %d levels observed in the simulator's value\n", 2*presses)
	return nil
}
