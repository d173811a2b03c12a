package box

import (
	"math"
	"testing"
	"time"
)

// link is a bottleneck of capacity bps with a queue: what is sent beyond
// it queues (delay grows) until the queue is full, then is lost.
type link struct {
	bps      float64
	queue    float64 // bytes queued
	maxQueue float64
}

// window sends sent bit/s for d and returns the feedback the remote
// clients would report (1200-byte packets).
func (l *link) window(sent float64, d time.Duration, sessions int) UplinkWindow {
	const pkt = 1200.0
	in := sent / 8 * d.Seconds()
	out := l.bps / 8 * d.Seconds()
	l.queue += in
	delivered := math.Min(l.queue, out)
	l.queue -= delivered
	lost := 0.0
	if l.queue > l.maxQueue {
		lost, l.queue = l.queue-l.maxQueue, l.maxQueue
	}
	return UplinkWindow{Duration: d, SentBytes: uint64(in), DeliveredBytes: uint64(delivered),
		Received: uint64(delivered / pkt), Lost: uint64(lost / pkt), Sessions: sessions,
		QueueDelay: time.Duration(l.queue / (l.bps / 8) * float64(time.Second))}
}

func TestUplinkEstimator(t *testing.T) {
	const mbit = 1e6
	t0 := time.Unix(1000, 0)
	w := 500 * time.Millisecond
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * w) }
	near := func(got, want float64) bool { return math.Abs(got-want) <= 0.08*want }

	t.Run("clean feedback: the configured cap", func(t *testing.T) {
		e := UplinkEstimator{CapBps: 4 * mbit}
		l := &link{bps: 10 * mbit, maxQueue: 64 << 10}
		var got UplinkEstimate
		for i := 1; i <= 6; i++ {
			got = e.Observe(at(i), l.window(2*mbit, w, 2))
		}
		if got.Bps != 4*mbit || got.Congested {
			t.Errorf("estimate %+v, want the 4 Mbit/s cap", got)
		}
	})

	t.Run("a 3 Mbit/s link under a 4 Mbit/s cap: measured", func(t *testing.T) {
		e := UplinkEstimator{CapBps: 4 * mbit}
		l := &link{bps: 3 * mbit, maxQueue: 64 << 10}
		var got UplinkEstimate
		congested := false
		for i := 1; i <= 8; i++ { // three copies of 1.2 Mbit/s
			got = e.Observe(at(i), l.window(3.6*mbit, w, 3))
			congested = congested || got.Congested
		}
		if !congested || !near(got.Bps, 3*mbit) {
			t.Errorf("estimate %+v, want about 3 Mbit/s, congested", got)
		}
		// Delay alone (a deep queue, no loss yet) says the same.
		e2 := UplinkEstimator{CapBps: 4 * mbit}
		l2 := &link{bps: 3 * mbit, maxQueue: 1 << 30}
		for i := 1; i <= 4; i++ {
			got = e2.Observe(at(i), l2.window(3.6*mbit, w, 3))
		}
		if !got.Congested || got.LossFraction != 0 || !near(got.Bps, 3*mbit) {
			t.Errorf("deep queue: estimate %+v, want about 3 Mbit/s from the delay", got)
		}
	})

	t.Run("recovery: back to the cap without congestion", func(t *testing.T) {
		e := UplinkEstimator{CapBps: 4 * mbit}
		l := &link{bps: 2 * mbit, maxQueue: 32 << 10}
		for i := 1; i <= 6; i++ {
			e.Observe(at(i), l.window(3*mbit, w, 3))
		}
		low := e.Observe(at(7), l.window(3*mbit, w, 3))
		if !low.Congested || !near(low.Bps, 2*mbit) {
			t.Fatalf("estimate %+v, want about 2 Mbit/s", low)
		}
		// Clean feedback again: 10%/s, from 2 to 4 Mbit/s in about 7 s.
		l.bps = 10 * mbit
		var got UplinkEstimate
		i := 8
		for ; i < 8+40; i++ {
			got = e.Observe(at(i), l.window(2*mbit, w, 2))
			if got.Bps >= 4*mbit {
				break
			}
		}
		took := time.Duration(i-7) * w
		if got.Bps != 4*mbit || took < 5*time.Second || took > 9*time.Second {
			t.Errorf("back at %.0f kbit/s after %v, want the cap after about 7 s", got.Bps/1e3, took)
		}
		// No feedback at all (one copy to the hub's relay): 1%/s, so a
		// minute brings 2 Mbit/s back to about 3.6.
		e2 := UplinkEstimator{CapBps: 4 * mbit}
		l2 := &link{bps: 2 * mbit, maxQueue: 32 << 10}
		for i := 1; i <= 7; i++ {
			got = e2.Observe(at(i), l2.window(3*mbit, w, 3))
		}
		start := got.Bps
		for i := 8; i < 8+120; i++ {
			got = e2.Observe(at(i), UplinkWindow{Duration: w})
		}
		if ratio := got.Bps / start; ratio < 1.7 || ratio > 1.9 || got.Congested {
			t.Errorf("a minute without feedback: %.0f -> %.0f kbit/s, want about 1.8 times", start/1e3, got.Bps/1e3)
		}
	})

	t.Run("no cap: what got through, and more when more gets through", func(t *testing.T) {
		e := UplinkEstimator{}
		l := &link{bps: 100 * mbit, maxQueue: 64 << 10}
		got := e.Observe(at(1), l.window(1.5*mbit, w, 1))
		if !near(got.Bps, 1.5*mbit) {
			t.Errorf("estimate %+v, want at least the 1.5 Mbit/s delivered", got)
		}
		got = e.Observe(at(2), l.window(3*mbit, w, 2))
		if got.Bps < 2.9*mbit {
			t.Errorf("estimate %+v, want at least the 3 Mbit/s delivered", got)
		}
		if (&UplinkEstimator{}).Observe(at(1), UplinkWindow{Duration: w}).Bps != 0 {
			t.Error("no cap and no feedback: want unknown (0)")
		}
	})

	t.Run("one bad window is not congestion", func(t *testing.T) {
		// A phone's CPU stalls for a moment: half its packets late or lost.
		e := UplinkEstimator{CapBps: 4 * mbit}
		l := &link{bps: 10 * mbit, maxQueue: 64 << 10}
		e.Observe(at(1), l.window(2*mbit, w, 2))
		bad := UplinkWindow{Duration: w, SentBytes: 125000, DeliveredBytes: 60000, Received: 50, Lost: 50, Sessions: 2}
		if got := e.Observe(at(2), bad); got.Congested || got.Bps != 4*mbit {
			t.Errorf("after one bad window: %+v, want the cap still", got)
		}
		if got := e.Observe(at(3), l.window(2*mbit, w, 2)); got.Congested || got.Bps != 4*mbit {
			t.Errorf("after a good one: %+v", got)
		}
		// Two in a row are, and cost at most 15%.
		e.Observe(at(4), bad)
		if got := e.Observe(at(5), bad); !got.Congested || !near(got.Bps, 3.4*mbit) {
			t.Errorf("after two bad windows: %+v, want congested at 85%% of the cap", got)
		}
	})

	t.Run("frames skipped for every phone", func(t *testing.T) {
		// No queue stands (the relay's policy keeps each session within
		// what gets through) but every session lost frames: 1.8 Mbit/s
		// delivered of 2.3.
		e := UplinkEstimator{CapBps: 4 * mbit}
		skip := UplinkWindow{Duration: w, SentBytes: 112500, DeliveredBytes: 112500, Received: 100, Sessions: 2, AllSkipping: true}
		var got UplinkEstimate
		for i := 1; i <= 6; i++ {
			got = e.Observe(at(i), skip)
		}
		if !got.Congested || !near(got.Bps, 1.8*mbit) {
			t.Errorf("every phone's frames skipped: %+v, want congested near 1.8 Mbit/s", got)
		}
		// One phone alone (its own downlink) says nothing of the uplink.
		e1 := UplinkEstimator{CapBps: 4 * mbit}
		one := skip
		one.Sessions = 1
		for i := 1; i <= 6; i++ {
			got = e1.Observe(at(i), one)
		}
		if got.Congested || got.Bps != 4*mbit {
			t.Errorf("one phone's frames skipped: %+v, want the cap", got)
		}
	})

	t.Run("every phone short of the stream", func(t *testing.T) {
		// Two phones of a 1.15 Mbit/s stream receive 1.85 Mbit/s between
		// them for 4 s: the relay keeps each within the wire, no queue.
		e := UplinkEstimator{CapBps: 4 * mbit}
		short := UplinkWindow{Duration: w, SentBytes: 115625, DeliveredBytes: 115625, Received: 100, Sessions: 2, StreamBps: 1.15 * mbit}
		var got UplinkEstimate
		for i := 1; i <= 14; i++ {
			got = e.Observe(at(i), short)
		}
		if !got.Congested || !near(got.Bps, 1.85*mbit) {
			t.Errorf("%+v, want congested near 1.85 Mbit/s", got)
		}
		// Served in full: nothing.
		e2 := UplinkEstimator{CapBps: 4 * mbit}
		full := short
		full.DeliveredBytes = 146000
		for i := 1; i <= 14; i++ {
			got = e2.Observe(at(i), full)
		}
		if got.Congested || got.Bps != 4*mbit {
			t.Errorf("served in full: %+v", got)
		}
	})

	t.Run("a window too small to judge changes nothing", func(t *testing.T) {
		e := UplinkEstimator{CapBps: 4 * mbit}
		got := e.Observe(at(1), UplinkWindow{Duration: w, SentBytes: 3000, DeliveredBytes: 1200, Received: 1, Lost: 2, Sessions: 1})
		if got.Congested || got.Bps != 4*mbit {
			t.Errorf("estimate %+v: 2 of 3 packets lost is too little to judge", got)
		}
	})

	t.Run("the policy follows the estimate", func(t *testing.T) {
		// Two copies of 1.2 Mbit/s fit a 4 Mbit/s cap (budget 3.2); on
		// a link that measures 2.5 Mbit/s (budget 2) they do not.
		e := UplinkEstimator{CapBps: 4 * mbit}
		l := &link{bps: 2.5 * mbit, maxQueue: 32 << 10}
		p := FanoutPolicy{}
		var est UplinkEstimate
		for i := 1; i <= 6; i++ {
			est = e.Observe(at(i), l.window(2.4*mbit+0.3*mbit, w, 2))
		}
		p.UplinkBps = est.Bps
		if d := p.Decide(2, 1.2*mbit, FanoutDirect); d.Mode != FanoutRelay {
			t.Errorf("estimate %.0f kbit/s: %s (%s), want relay", est.Bps/1e3, d.Mode, d.Reason)
		}
		p.UplinkBps = 4 * mbit
		if d := p.Decide(2, 1.2*mbit, FanoutDirect); d.Mode != FanoutDirect {
			t.Errorf("the cap alone: %s, want direct", d.Mode)
		}
	})
}
