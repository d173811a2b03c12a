// Command hilboard runs in the HIL VM next to `callbox run`, whose board is
// the generic profile wired to a gpio-sim chip: button A on line 0, button B
// on line 1 (to ground: pressed = pulled down), the LED on line 2. It
// presses the simulated buttons through gpio-sim's sysfs, reads the LED line
// back from the simulator, and checks the box's answers on /api/state:
// the press triggers its action, and the LED line shows the state's pattern
// with the right timing.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	sys    = flag.String("sys", os.Getenv("HIL_GPIOSIM"), "gpio-sim chip directory in sysfs")
	url    = flag.String("url", "http://127.0.0.1:8081", "the box's HTTP address")
	lineA  = flag.Int("a", 0, "button A line")
	lineB  = flag.Int("b", 1, "button B line")
	ledOff = flag.Int("led", 2, "LED line")
	tol    = flag.Duration("tol", 50*time.Millisecond, "timing tolerance (TCG guests jitter)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("BOARD FAIL:", err)
		os.Exit(1)
	}
}

func attr(line int, name string) string {
	return filepath.Join(*sys, fmt.Sprintf("sim_gpio%d", line), name)
}

// press moves a button line: a button to ground pulls it down.
func press(line int, down bool) error {
	v := "pull-up"
	if down {
		v = "pull-down"
	}
	return os.WriteFile(attr(line, "pull"), []byte(v), 0)
}

func click(line int, d time.Duration) error {
	if err := press(line, true); err != nil {
		return err
	}
	time.Sleep(d)
	return press(line, false)
}

func led() (bool, error) {
	b, err := os.ReadFile(attr(*ledOff, "value"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

type run_ struct {
	on bool
	d  time.Duration
}

func (r run_) String() string {
	if r.on {
		return fmt.Sprintf("on %v", r.d.Round(time.Millisecond))
	}
	return fmt.Sprintf("off %v", r.d.Round(time.Millisecond))
}

// sample watches the LED line for d and returns its runs of equal level;
// the first and last are cut by the window, so callers skip them.
func sample(d time.Duration) ([]run_, error) {
	var runs []run_
	start := time.Now()
	cur, err := led()
	if err != nil {
		return nil, err
	}
	since := start
	for time.Since(start) < d {
		time.Sleep(2 * time.Millisecond)
		v, err := led()
		if err != nil {
			return nil, err
		}
		if v != cur {
			now := time.Now()
			runs = append(runs, run_{cur, now.Sub(since)})
			cur, since = v, now
		}
	}
	runs = append(runs, run_{cur, time.Since(since)})
	return runs, nil
}

func near(got, want time.Duration) bool { return got > want-*tol && got < want+*tol }

// expectRhythm checks that the complete runs (all but the first and last)
// repeat want, a cycle of (on, duration) starting anywhere.
func expectRhythm(runs []run_, want []run_) error {
	inner := runs
	if len(inner) < 2+len(want) {
		return fmt.Errorf("only %d level changes: %v", len(runs), runs)
	}
	inner = inner[1 : len(inner)-1]
	// Find the phase: the first inner run matching some step.
	for phase := range want {
		ok := true
		for i, r := range inner {
			w := want[(phase+i)%len(want)]
			if r.on != w.on || !near(r.d, w.d) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("LED runs %v do not follow %v (±%v)", inner, want, *tol)
}

type state struct {
	State   string `json:"state"`
	LED     string `json:"led"`
	Message string `json:"message"`
	Paired  bool   `json:"paired"`
	Muted   bool   `json:"muted"`
	Waiting int    `json:"waiting"`
}

func get(token string) (state, error) {
	var s state
	r, err := http.Get(*url + "/api/state?token=" + token)
	if err != nil {
		return s, err
	}
	defer r.Body.Close()
	err = json.NewDecoder(r.Body).Decode(&s)
	return s, err
}

func waitState(what string, limit time.Duration, cond func(state) bool) (state, error) {
	deadline := time.Now().Add(limit)
	for {
		s, err := get("")
		if err == nil && cond(s) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s: not within %v (last %+v, %v)", what, limit, s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func run() error {
	if *sys == "" {
		return fmt.Errorf("no gpio-sim sysfs directory (-sys or $HIL_GPIOSIM)")
	}
	if _, err := waitState("box ready", 90*time.Second, func(s state) bool { return s.State == "ready" }); err != nil {
		return err
	}
	runs, err := sample(time.Second)
	if err != nil {
		return err
	}
	if len(runs) != 1 || !runs[0].on {
		return fmt.Errorf("ready: LED should be steady on, got %v", runs)
	}
	fmt.Println("BOARD LED READY PASS: steady on")

	// A short press: mute. The LED: a 100 ms flash every 2 s.
	if err := click(*lineA, ms(200)); err != nil {
		return err
	}
	if _, err := waitState("muted after A short", 5*time.Second, func(s state) bool { return s.Muted && s.State == "muted" }); err != nil {
		return err
	}
	runs, err = sample(6500 * time.Millisecond) // three cycles of 2 s: expectRhythm needs 4 whole runs inside
	if err != nil {
		return err
	}
	if err := expectRhythm(runs, []run_{{true, ms(100)}, {false, ms(1900)}}); err != nil {
		return fmt.Errorf("muted: %w", err)
	}
	fmt.Printf("BOARD LED MUTED PASS: %v\n", runs[1:len(runs)-1])
	if err := click(*lineA, ms(200)); err != nil {
		return err
	}
	if _, err := waitState("unmuted", 5*time.Second, func(s state) bool { return !s.Muted && s.State == "ready" }); err != nil {
		return err
	}

	// Pairing: a phone asks, the LED shows one waiting, both buttons admit it.
	type result struct {
		code int
		tok  string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		r, err := http.Post(*url+"/api/pair/request", "application/json", bytes.NewReader(nil))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer r.Body.Close()
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		got <- result{code: r.StatusCode, tok: body["token"]}
	}()
	if _, err := waitState("phone waiting", 5*time.Second, func(s state) bool { return s.Waiting == 1 && s.LED == "pairing" }); err != nil {
		return err
	}
	runs, err = sample(6500 * time.Millisecond) // three cycles of 2.1 s
	if err != nil {
		return err
	}
	// The long flash, then one short flash for the one waiting phone.
	if err := expectRhythm(runs, []run_{{true, ms(600)}, {false, ms(400)}, {true, ms(100)}, {false, ms(1000)}}); err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	fmt.Printf("BOARD LED PAIRING PASS: %v\n", runs[1:len(runs)-1])
	if err := press(*lineA, true); err != nil {
		return err
	}
	time.Sleep(ms(50))
	if err := press(*lineB, true); err != nil {
		return err
	}
	time.Sleep(ms(300))
	press(*lineA, false)
	press(*lineB, false)
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pairing request not answered 10 s after both buttons")
	}
	if r.err != nil || r.code != 200 || r.tok == "" {
		return fmt.Errorf("pairing request: %+v", r)
	}
	if s, err := get(r.tok); err != nil || !s.Paired {
		return fmt.Errorf("token not paired: %+v %v", s, err)
	}
	fmt.Println("BOARD PAIR PASS: A+B admitted the waiting phone")

	// Factory reset: A held past 10 s flickers the LED (let go now), then
	// a short press of A confirms.
	if err := press(*lineA, true); err != nil {
		return err
	}
	time.Sleep(10300 * time.Millisecond)
	runs, err = sample(time.Second)
	press(*lineA, false)
	if err != nil {
		return err
	}
	if err := expectRhythm(runs, []run_{{true, ms(50)}, {false, ms(50)}}); err != nil {
		return fmt.Errorf("held past 10 s: %w", err)
	}
	fmt.Printf("BOARD LED RESET PASS: %d flickers in 1 s\n", len(runs)/2)
	time.Sleep(ms(300))
	if err := click(*lineA, ms(200)); err != nil {
		return err
	}
	if _, err := waitState("reset done", 5*time.Second, func(s state) bool { return s.LED != "reset" }); err != nil {
		return err
	}
	if s, err := get(r.tok); err != nil || s.Paired {
		return fmt.Errorf("token still paired after the factory reset: %+v %v", s, err)
	}
	fmt.Println("BOARD RESET PASS: the confirmed very long press revoked the token")
	return nil
}
