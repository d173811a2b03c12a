package natlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// S7 in the appliance (docs/peer.md): the box of TestNATLabRemotePhone's
// cone case, its uplink shaped by tc tbf to the 4 Mbit/s it is configured
// with, and three remote phones (`callbox view --webrtc`, headless pion
// phones following the hub's media signalling) behind another NAT. Two
// phones take a copy each from the box; the third passes 80% of the
// uplink, and the box publishes one copy to the hub's relay and moves
// every phone there (make-before-break); when the third leaves, the two
// left fit under the hysteresis band and go back to the box.

// s7Bitrate is the box's H.264 target (kbit/s) in the phone lab: with its
// audio, three copies pass 80% of 4 Mbit/s, two stay under 60%.
const s7Bitrate = "1100"

// s7LinkRate is the box's uplink as tc tbf shapes it: above the 4 Mbit/s
// the owner configured, so that a move's overlap fits on the wire (during
// a move the keyframe goes to the old copies and the hub's: with this test
// stream's short GOP, 4 x 43 KB every 290 ms; at 5 Mbit/s that burst alone
// took about a GOP), and the decision is the policy's from the configured
// figure. The estimator's answer to a link slower than the figure is
// TestUplinkEstimator's.
const s7LinkRate = "8mbit"

// s7Size, s7GOP and s7FPS are the box's picture in the phone lab: the
// test pattern compresses so well that its keyframes make most of the
// bitrate. 1.4 keyframes a second at 1080p give about 1.15 Mbit/s with
// the audio, in the middle of the window the policy needs: three copies
// above 80% of 4 Mbit/s (1067 kbit/s each), two below 64% (1280). (At
// 720p it takes 3.4 a second: a 290 ms GOP, shorter than a move's
// keyframe burst on a busy machine.)
const (
	s7Size = "1920x1080"
	s7GOP  = "21"
	s7FPS  = "30"
)

// s7Phone is what a phone's `callbox view --json` says of its S7 moves.
type s7Phone struct {
	Whole        uint64  `json:"frames_whole"`
	Incomplete   uint64  `json:"frames_incomplete"`
	FirstFrameMs float64 `json:"first_frame_ms"`
	MaxGapMs     float64 `json:"max_frame_gap_ms"`
	Mode         string  `json:"mode"`
	Moves        []struct {
		Mode         string  `json:"mode"`
		LearnedMs    int64   `json:"learned_ms"`
		FirstFrameMs int64   `json:"first_frame_ms"`
		MaxGapMs     float64 `json:"max_gap_ms"`
		Path         string  `json:"path"`
		Error        string  `json:"error"`
	} `json:"moves"`
}

// s7State is /api/state's "remote".
type s7State struct {
	Mode          string `json:"mode"`
	UplinkKbps    int    `json:"uplink_kbps"`
	StreamKbps    int    `json:"stream_kbps"`
	Viewers       int    `json:"viewers"`
	DirectViewers int    `json:"direct_viewers"`
	HubViewers    int    `json:"hub_viewers"`
	Switches      int    `json:"switches"`
	SwitchedAtMs  int64  `json:"switched_at_ms"`
	Reason        string `json:"reason"`
	UplinkReason  string `json:"uplink_reason"`
}

func boxS7State(t *testing.T, c *http.Client, base, token string) s7State {
	r, err := c.Get(base + "/api/state?token=" + token)
	if err != nil {
		t.Errorf("/api/state: %v", err)
		return s7State{}
	}
	defer r.Body.Close()
	var st struct {
		Remote *s7State `json:"remote"`
	}
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil || st.Remote == nil {
		t.Errorf("/api/state: no remote: %v", err)
		return s7State{}
	}
	return *st.Remote
}

// txSample is the box's interface counter at a time.
type txSample struct {
	at    time.Time
	bytes uint64
}

func testS7(t *testing.T, l *lab, lan *http.Client, boxBase, token, whep, cred string) {
	testenv := func(name string) {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("S7: %s: %v", name, err)
		}
	}
	testenv("tc")
	// The box's uplink: tbf on its only interface.
	l.in("hA", "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", s7LinkRate, "burst", "32kb", "latency", "400ms")
	l.host("hP2", "natB", 2, 3)
	l.host("hP3", "natB", 2, 4)

	// Upload on the box's interface, every 200 ms.
	var mu sync.Mutex
	var tx []txSample
	stopTx := make(chan struct{})
	txDone := make(chan struct{})
	go func() {
		defer close(txDone)
		for {
			out, err := exec.Command("ip", "netns", "exec", l.pfx+"hA", "cat", "/sys/class/net/eth0/statistics/tx_bytes").Output()
			if err == nil {
				if n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64); err == nil {
					mu.Lock()
					tx = append(tx, txSample{time.Now(), n})
					mu.Unlock()
				}
			}
			select {
			case <-stopTx:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	rate := func(from, to time.Time) float64 { // kbit/s
		mu.Lock()
		defer mu.Unlock()
		var a, b *txSample
		for i := range tx {
			if a == nil && !tx[i].at.Before(from) {
				a = &tx[i]
			}
			if !tx[i].at.After(to) {
				b = &tx[i]
			}
		}
		if a == nil || b == nil || !b.at.After(a.at) {
			return 0
		}
		return float64(b.bytes-a.bytes) * 8 / b.at.Sub(a.at).Seconds() / 1000
	}

	type phone struct {
		name  string
		start time.Time
		out   bytes.Buffer
		cmd   *exec.Cmd
		sum   s7Phone
	}
	run := func(ns string, d time.Duration) *phone {
		p := &phone{name: ns, start: time.Now()}
		p.cmd = l.start(ns, &lockedWriter{w: &p.out}, "view", "--webrtc", "--json", "--duration", d.String(), "--token", cred, whep)
		return p
	}
	wait := func(p *phone) {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("S7 %s: %v: %s\n%s", p.name, err, p.out.String(), tail(l.stderrOf(p.cmd), 2000))
			return
		}
		if err := json.Unmarshal(p.out.Bytes(), &p.sum); err != nil {
			t.Errorf("S7 %s: summary: %v: %q", p.name, err, p.out.String())
		}
	}
	waitState := func(what string, budget time.Duration, ok func(s7State) bool) (s7State, time.Time) {
		deadline := time.Now().Add(budget)
		for {
			st := boxS7State(t, lan, boxBase, token)
			if ok(st) {
				return st, time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("S7: %s not within %v: %+v", what, budget, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t0 := time.Now()
	p1, p2 := run("hP", 22*time.Second), run("hP2", 22*time.Second)
	two, twoAt := waitState("two direct phones", 10*time.Second, func(s s7State) bool { return s.DirectViewers == 2 && s.StreamKbps > 0 })
	time.Sleep(1500 * time.Millisecond) // a window of two copies' upload
	twoRate := rate(twoAt, time.Now())
	p3 := run("hP3", 9*time.Second)
	hub, _ := waitState("the switch to the hub", 8*time.Second, func(s s7State) bool { return s.Mode == "hub" })
	// Every phone on the hub's relay, then a steady window of one copy.
	_, allHub := waitState("three phones on the hub's relay", 8*time.Second, func(s s7State) bool { return s.HubViewers == 3 && s.DirectViewers == 0 })
	time.Sleep(1 * time.Second)
	hubFrom := time.Now()
	wait(p3)
	hubRate := rate(hubFrom, time.Now().Add(-300*time.Millisecond))
	back, _ := waitState("the switch back to direct", 8*time.Second, func(s s7State) bool { return s.Mode == "direct" && s.Switches >= 2 })
	_, allBack := waitState("two phones back on the box", 8*time.Second, func(s s7State) bool { return s.DirectViewers == 2 && s.HubViewers == 0 })
	time.Sleep(3 * time.Second)
	backRate := rate(allBack.Add(500*time.Millisecond), time.Now())
	wait(p1)
	wait(p2)
	close(stopTx)
	<-txDone
	if t.Failed() {
		return
	}

	ms := func(at int64) string { return fmt.Sprintf("%6.0f", float64(at-t0.UnixMilli())) }
	p3First := p3.start.UnixMilli() + int64(p3.sum.FirstFrameMs)
	var b strings.Builder
	fmt.Fprintf(&b, "S7 switching timeline (ms from the first phone's start; box uplink tc tbf %s, configured 4000 kbit/s; stream %d kbit/s measured by the box; uplink estimate %d kbit/s):\n",
		s7LinkRate, two.StreamKbps, hub.UplinkKbps)
	fmt.Fprintf(&b, "%s  phone 3 starts (two phones direct: box upload %.0f kbit/s)\n", ms(p3.start.UnixMilli()), twoRate)
	fmt.Fprintf(&b, "%s  phone 3's first whole frame (direct)\n", ms(p3First))
	fmt.Fprintf(&b, "%s  box decides: one copy through the hub (%d viewers: %s), %d ms after phone 3's start\n", ms(hub.SwitchedAtMs), hub.Viewers, hub.Reason, hub.SwitchedAtMs-p3.start.UnixMilli())
	for _, p := range []*phone{p1, p2, p3} {
		for _, m := range p.sum.Moves {
			fmt.Fprintf(&b, "%s  %s: told %s, first whole frame there at %s (%s), longest wait between frames during the move %.0f ms%s\n",
				ms(m.LearnedMs), p.name, m.Mode, ms(m.FirstFrameMs), m.Path, m.MaxGapMs, m.Error)
		}
	}
	fmt.Fprintf(&b, "%s  all three on the hub's relay; box upload %.0f kbit/s (one copy)\n", ms(allHub.UnixMilli()), hubRate)
	fmt.Fprintf(&b, "%s  phone 3 left; box decides: back to direct (%d viewers: %s)\n", ms(back.SwitchedAtMs), back.Viewers, back.Reason)
	fmt.Fprintf(&b, "%s  two phones back on the box; box upload %.0f kbit/s (two copies)\n", ms(allBack.UnixMilli()), backRate)
	for _, p := range []*phone{p1, p2, p3} {
		fmt.Fprintf(&b, "       %s: frames whole %d, incomplete %d, longest wait between frames in the whole run %.0f ms\n", p.name, p.sum.Whole, p.sum.Incomplete, p.sum.MaxGapMs)
	}
	host, _ := os.Hostname()
	t.Logf("on %s (%s)\n%s", host, time.Now().UTC().Format(time.RFC3339), b.String())

	// The acceptance (issue 17).
	if d := hub.SwitchedAtMs - p3First; d > 2000 {
		t.Errorf("S7: the box switched %d ms after the third phone's first frame, want within 2 s", d)
	}
	stream := float64(two.StreamKbps)
	if hubRate > 1.5*stream || hubRate < 0.5*stream {
		t.Errorf("S7: box upload %.0f kbit/s on the hub's relay, want near one copy (%0.f kbit/s)", hubRate, stream)
	}
	if twoRate < 1.5*stream {
		t.Errorf("S7: box upload %.0f kbit/s with two direct phones, want about two copies (%0.f kbit/s)", twoRate, 2*stream)
	}
	gop, _ := strconv.ParseFloat(s7GOP, 64)
	fps, _ := strconv.ParseFloat(s7FPS, 64)
	gop = gop / fps * 1000
	for _, p := range []*phone{p1, p2, p3} {
		want := []string{"hub", "direct"}
		if p == p3 {
			want = want[:1]
		}
		var got []string
		for _, m := range p.sum.Moves {
			got = append(got, m.Mode)
			if m.Error != "" {
				t.Errorf("S7 %s: move to %s: %s", p.name, m.Mode, m.Error)
			}
			// Make-before-break: a move adds no wait longer than a GOP.
			// (The whole run's longest wait is printed, not judged: on a
			// shared machine the box's encoder stalls now and then,
			// whatever the path.)
			if m.MaxGapMs > gop {
				t.Errorf("S7 %s: %.0f ms without a frame during the move to %s, want no gap longer than one GOP (%.0f ms)", p.name, m.MaxGapMs, m.Mode, gop)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("S7 %s: moves %v, want %v", p.name, got, want)
		}
		if p.sum.Incomplete != 0 || p.sum.Whole == 0 {
			t.Errorf("S7 %s: %d whole, %d incomplete frames: want whole frames only", p.name, p.sum.Whole, p.sum.Incomplete)
		}
	}

	if t.Failed() {
		return
	}

	// The box measures its uplink: the link drops to 2 Mbit/s, below the
	// configured 4. Two phones (2.3 Mbit/s) fit the configured figure but
	// not the wire: their feedback (a standing queue, then losses) brings
	// the estimate down, and the box decides on one copy through the hub
	// although the configuration alone would keep them direct. (Whether
	// the phones get there is reported, not judged: make-before-break
	// needs the old copies and the hub's on a wire that cannot carry the
	// old ones, and the hub's copy, TCP, loses to them: docs/peer.md.)
	l.in("hA", "tc", "qdisc", "change", "dev", "eth0", "root", "tbf", "rate", "2mbit", "burst", "32kb", "latency", "400ms")
	m0 := time.Now()
	q1, q2 := run("hP", 16*time.Second), run("hP2", 16*time.Second)
	meas, measAt := waitState("the measured uplink moving two phones to the hub", 15*time.Second, func(s s7State) bool { return s.Mode == "hub" && s.Switches >= 3 })
	onHub := "never"
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st := boxS7State(t, lan, boxBase, token); st.HubViewers == 2 && st.DirectViewers == 0 {
			onHub = fmt.Sprintf("at +%d ms", time.Since(m0).Milliseconds())
			break
		}
	}
	// Here the wire drops packets until the move: `view` exits 1 on an
	// incomplete frame, which this phase reports and does not judge.
	for _, q := range []*phone{q1, q2} {
		_ = q.cmd.Wait()
		if err := json.Unmarshal(q.out.Bytes(), &q.sum); err != nil {
			t.Errorf("S7 %s: summary: %v: %q", q.name, err, q.out.String())
		}
	}
	var moves []string
	for _, q := range []*phone{q1, q2} {
		for _, m := range q.sum.Moves {
			moves = append(moves, fmt.Sprintf("%s: %s at +%d ms %s", q.name, m.Mode, m.FirstFrameMs-m0.UnixMilli(), m.Error))
		}
	}
	t.Logf("measured uplink (tc tbf 2mbit, configured 4000 kbit/s): two phones started at +0 ms; the box decided on the hub at +%d ms "+
		"(estimate %d kbit/s, %s: %s); both on the hub's relay: %s; moves %v; frames whole/incomplete %d/%d and %d/%d",
		meas.SwitchedAtMs-m0.UnixMilli(), meas.UplinkKbps, meas.Reason, meas.UplinkReason, onHub, moves,
		q1.sum.Whole, q1.sum.Incomplete, q2.sum.Whole, q2.sum.Incomplete)
	_ = measAt
	if meas.UplinkKbps >= 3000 || meas.UplinkKbps < 1000 {
		t.Errorf("S7 measured: estimate %d kbit/s on a 2 Mbit/s link under a 4000 kbit/s cap", meas.UplinkKbps)
	}
}
