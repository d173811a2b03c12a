package box

import (
	"fmt"
	"time"
)

// UplinkEstimator turns the congestion feedback of a box's remote WebRTC
// clients (transport-wide congestion control: what each client received,
// what it lost, how much later than sent it arrived) into an estimate of
// the box's uplink for FanoutPolicy (S7). The configured uplink is a cap:
// the estimate never exceeds it.
//
// The reasoning is a sender's: while the remote copies go through without
// loss, without their delay growing, and without the relay's policy
// skipping frames for all of them (one phone's slow downlink skips frames
// for that one only), the uplink carries them and the
// estimate is the cap (or, with no cap, at least what was delivered).
// When they queue (delay grows) or are lost, the uplink is full, and what
// the clients received in that window is what it carries: the estimate
// drops toward that delivered rate: by at most 15% a window, and only
// after two windows in a row said so (a phone's busy CPU delays and drops
// packets too, for a moment). It climbs back by Recovery per second
// while the feedback is clean, and by IdleRecovery per second while there
// is none (no remote clients: one copy to the hub's relay gives no WebRTC
// feedback, so nothing says the uplink got better: the box tries direct
// copies again after a minute or so, not at once), up to the cap.
type UplinkEstimator struct {
	// CapBps is the configured uplink in bit/s (0: unknown, measured only).
	CapBps float64
	// LossLimit is the fraction of lost packets in a window that means
	// congestion (default 0.05: Wi-Fi loses a little without congestion).
	LossLimit float64
	// DelayLimit is the standing queue (the smallest growth of the one-way
	// delay over its minimum during a window: a queue that never drained)
	// that means congestion (default 50 ms).
	DelayLimit time.Duration
	// Recovery is how fast the estimate climbs back, per second, as a
	// fraction, while the feedback is clean (default 0.1).
	Recovery float64
	// IdleRecovery is the same without feedback (default 0.01).
	IdleRecovery float64
	// MinBps is the floor of a measured estimate (default 64 kbit/s): a
	// window with almost nothing delivered says little.
	MinBps float64

	est       float64
	last      time.Time
	congested bool
	reason    string
	signals   int // consecutive windows with a congestion signal
	// got and want are the last shortSpan windows' bytes received by two
	// or more sessions and their full-rate stream.
	got, want [shortSpan]float64
	shortI    int
}

// shortSpan windows (4 s of 500 ms) make the span of the received share:
// a keyframe on either side of a window's edge moves a short one by ±50%.
const shortSpan = 8

// shortShare below this means the phones get too little of the stream.
const shortShare = 0.85

// UplinkWindow is the remote clients' feedback over one window, summed
// over the sessions.
type UplinkWindow struct {
	Duration       time.Duration
	SentBytes      uint64        // RTP payload and headers sent to the remote clients
	DeliveredBytes uint64        // of those, reported received by their feedback
	Received, Lost uint64        // packets reported received and lost
	QueueDelay     time.Duration // the largest standing queue among the sessions (each one's smallest queueing delay in the window)
	Sessions       int
	// AllSkipping: the relay's per-client policy skipped frames for every
	// session (it keeps each within what reaches its phone, so a full
	// uplink shows as skipped frames for all of them, often before any
	// queue stands).
	AllSkipping bool
	// StreamBps is the stream one phone takes at full rate: with two or
	// more sessions, what they received over the last few seconds against
	// that tells a full uplink (the relay's policy skipping frames for all
	// of them) from a full phone.
	StreamBps float64
}

// UplinkEstimate is the estimator's state after a window.
type UplinkEstimate struct {
	Bps          float64 // the estimate (0: unknown)
	CapBps       float64
	DeliveredBps float64 // what the window's feedback reported received
	LossFraction float64
	QueueDelay   time.Duration
	Congested    bool
	Reason       string
}

// Observe takes one window of feedback at now and returns the estimate.
func (e *UplinkEstimator) Observe(now time.Time, w UplinkWindow) UplinkEstimate {
	lossLimit, delayLimit, recovery, minBps := e.LossLimit, e.DelayLimit, e.Recovery, e.MinBps
	if w.Sessions == 0 {
		recovery = e.IdleRecovery
		if recovery <= 0 {
			recovery = 0.01
		}
	}
	if lossLimit <= 0 {
		lossLimit = 0.05
	}
	if delayLimit <= 0 {
		delayLimit = 50 * time.Millisecond
	}
	if recovery <= 0 {
		recovery = 0.1
	}
	if minBps <= 0 {
		minBps = 64e3
	}
	if e.last.IsZero() {
		e.est = e.CapBps
	}
	dt := now.Sub(e.last).Seconds()
	if e.last.IsZero() || dt <= 0 || dt > 10 {
		dt = w.Duration.Seconds()
	}
	e.last = now
	out := UplinkEstimate{CapBps: e.CapBps, QueueDelay: w.QueueDelay}
	if w.Duration > 0 {
		out.DeliveredBps = float64(w.DeliveredBytes) * 8 / w.Duration.Seconds()
	}
	if n := w.Received + w.Lost; n > 0 {
		out.LossFraction = float64(w.Lost) / float64(n)
	}
	// A window with a few packets says nothing about loss (one lost of
	// ten is noise), and a window that sent almost nothing cannot fill
	// any uplink.
	enough := w.Sessions > 0 && w.Received+w.Lost >= 20 && float64(w.SentBytes)*8/max(w.Duration.Seconds(), 1e-3) >= minBps
	share := 1.0
	if w.Duration > 0 {
		i := e.shortI % shortSpan
		e.got[i], e.want[i] = 0, 0
		if enough && w.Sessions > 1 && w.StreamBps > 0 {
			e.got[i] = float64(w.DeliveredBytes)
			e.want[i] = float64(w.Sessions) * w.StreamBps / 8 * w.Duration.Seconds()
		}
		e.shortI++
		var g, wt float64
		n := 0
		for j := range e.got {
			if e.want[j] > 0 {
				g, wt, n = g+e.got[j], wt+e.want[j], n+1
			}
		}
		if n == shortSpan {
			share = g / wt
		}
	}
	signal := ""
	switch {
	case enough && out.LossFraction > lossLimit:
		signal = fmt.Sprintf("%.0f%% of the remote clients' packets lost", out.LossFraction*100)
	case enough && w.QueueDelay > delayLimit:
		signal = fmt.Sprintf("the remote clients' packets queue for %d ms", w.QueueDelay.Milliseconds())
	case enough && w.AllSkipping && w.Sessions > 1:
		signal = fmt.Sprintf("the relay skips frames for all %d remote clients", w.Sessions)
	case share < shortShare:
		signal = fmt.Sprintf("the remote clients received %.0f%% of the stream over %v", share*100, shortSpan*w.Duration)
	}
	if signal != "" {
		e.signals++
	} else {
		e.signals = 0
	}
	e.congested = e.signals >= 2
	if e.congested {
		e.reason = signal
		floor := 0.85 * e.est
		if e.est <= 0 {
			floor = 0
		}
		e.est = max(out.DeliveredBps, floor, minBps)
	} else if signal != "" {
		e.reason = "a congestion signal, once: " + signal
	} else {
		switch {
		case e.est > 0:
			e.est *= 1 + recovery*dt
		case enough:
			e.est = out.DeliveredBps // no cap: what got through is a floor
		}
		if enough && out.DeliveredBps > e.est {
			e.est = out.DeliveredBps
		}
		e.reason = "no congestion in the remote clients' feedback"
		if w.Sessions == 0 {
			e.reason = "no remote WebRTC clients: climbing back to the cap"
		}
	}
	if e.CapBps > 0 && e.est > e.CapBps {
		e.est = e.CapBps
		if !e.congested {
			e.reason = "the configured uplink (no congestion seen below it)"
		}
	}
	out.Bps, out.Congested, out.Reason = e.est, e.congested, e.reason
	return out
}
