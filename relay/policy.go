package relay

import (
	"math"
	"time"

	"github.com/callbox/callbox/capture"
)

// policy is one session's Buffer and pacing state (design S11-S13, S15) as
// a plain state machine: no locks, no goroutines, no clock of its own. The
// session calls it under its mutex and passes the time in, so tests drive
// every branch with a fake clock.
type policy struct {
	kind capture.Kind
	k    KindConfig

	healthTimeout int64 // nanoseconds
	writeTimeout  int64
	flushWindow   int64
	maxFlushes    int
	minFrames     int

	// The Buffer: a ring of units, oldest at head.
	q      []*unit
	head   int
	n      int
	qBytes int

	idle          int   // messages sent that no Health Check covered yet
	inflight      bool  // a write is in progress
	inflightSince int64 // when it started
	owedSince     int64 // when the client began owing a Health Check; 0: none owed
	needStart     uint64
	flushTimes    []int64 // ring of the last maxFlushes flush times
	flushNext     int
	progress      bool // a unit completed since the last flush
	eject         *EjectError

	// Whole units the client has received: a unit is complete when the
	// Health Checks have covered every message up to its last.
	sentTotal  uint64   // messages taken for sending, ever
	ackedTotal uint64   // messages Health Checks covered, ever
	unitEnds   []uint64 // ring: sentTotal at the end of each unit in flight
	ueHead     int
	ueN        int
	doneTimes  []int64 // ring of the last doneRing completion times
	doneNext   int
	born       int64 // the first offer's time
	bornSet    bool

	st stats
}

// stats are a session's counters, read by the metrics collector.
type stats struct {
	sentMsgs, sentBytes, sentUnits uint64
	dropMsgs, dropUnits            uint64
	flushes, healthChecks          uint64
	idleFlushes                    uint64 // flushes with no progress since the previous one
	keyRequests                    uint64
}

func newPolicy(kind capture.Kind, cfg *Config) *policy {
	return newPolicyWith(kind, cfg.kind(kind), cfg)
}

// newPolicyWith takes the kind's parameters from kc (a transport's own)
// and the disconnect rules from cfg.
// maxUnitEnds bounds the ring of units in flight: an idle limit of a
// billion packets (tests whose fakes never acknowledge) must not cost
// gigabytes per session, nor overflow make on a 32-bit board. Beyond it the
// oldest unit's end is forgotten (see the ring's push), which only matters
// with more than this many whole units unacknowledged.
const maxUnitEnds = 4096

func newPolicyWith(kind capture.Kind, kc *KindConfig, cfg *Config) *policy {
	k := *kc
	p := &policy{
		kind:          kind,
		k:             k,
		healthTimeout: int64(cfg.HealthTimeout),
		writeTimeout:  int64(cfg.WriteTimeout),
		flushWindow:   int64(cfg.FlushWindow),
		maxFlushes:    cfg.MaxFlushes,
		minFrames:     max(cfg.MinFrames, 1),
		q:             make([]*unit, k.MaxUnits+1),
		progress:      true, // the first flush is never "repeated"
		flushTimes:    make([]int64, cfg.MaxFlushes),
		unitEnds:      make([]uint64, min(k.IdleLimit+k.Batch+2, maxUnitEnds)),
		doneTimes:     make([]int64, doneRing),
	}
	for i := range p.doneTimes {
		p.doneTimes[i] = math.MinInt64 // no completion yet
	}
	if kind == capture.KindVideo {
		// Every client starts at a frame a decoder can start from: an
		// H.264 client joining between IDRs would otherwise get frames it
		// cannot decode (JPEG frames all qualify).
		p.needStart = ^uint64(0)
	}
	return p
}

// busy reports S12's condition: a write is in flight or idle reached the limit.
func (p *policy) busy() bool { return p.inflight || p.idle >= p.k.IdleLimit }

func (p *policy) push(u *unit) {
	p.q[(p.head+p.n)%len(p.q)] = u
	p.n++
	p.qBytes += u.bytes()
}

func (p *policy) pop() *unit {
	u := p.q[p.head]
	p.q[p.head] = nil
	p.head = (p.head + 1) % len(p.q)
	p.n--
	p.qBytes -= u.bytes()
	return u
}

func (p *policy) at(i int) *unit { return p.q[(p.head+i)%len(p.q)] }

func (p *policy) drop(u *unit) {
	p.st.dropUnits++
	p.st.dropMsgs += uint64(u.msgs)
	u.release()
}

// offer hands a new unit to the session; the policy takes its own reference
// if it queues it. It returns whether the session should be woken (the unit
// was queued) and a mask of publishers that should be asked for a keyframe.
func (p *policy) offer(u *unit, now int64) (queued bool, keyReq uint64) {
	if p.eject != nil {
		return false, 0
	}
	if !p.bornSet {
		p.born, p.bornSet = now, true
	}
	bit := uint64(1) << (u.pub & 63)
	if p.needStart&bit != 0 {
		if !u.start {
			// Resume only at a frame a decoder can start from (S12 video flush).
			p.st.dropUnits++
			p.st.dropMsgs += uint64(u.msgs)
			return false, 0
		}
		p.needStart &^= bit
	}
	u.ref()
	p.push(u)
	if p.n > p.k.MaxUnits || p.qBytes > p.k.MaxBytes || p.span() > int64(p.k.MaxDelay) {
		keyReq = p.flush(now)
	}
	return p.n > 0, keyReq
}

// span is the Buffer's media time: newest minus oldest capture time.
func (p *policy) span() int64 {
	if p.n < 2 {
		return 0
	}
	return p.at(p.n-1).capture - p.at(0).capture
}

// flush cuts the delay of a client whose link has not kept up (S12), by kind.
func (p *policy) flush(now int64) (keyReq uint64) {
	p.st.flushes++
	if p.kind == capture.KindVideo {
		// Drop everything queued. The newest unit stays when a decoder can
		// start from it and it fits the bounds on its own: it is the "next
		// frame start" and dropping it would only add a frame of delay.
		newest := p.at(p.n - 1)
		keep := newest.start && newest.bytes() <= p.k.MaxBytes
		for p.n > 1 {
			p.drop(p.pop())
		}
		if !keep {
			p.drop(p.pop())
		}
		// Every other publisher's stream restarts at its next start too.
		all := ^uint64(0)
		if keep {
			all &^= uint64(1) << (newest.pub & 63)
		}
		keyReq = all &^ p.needStart
		p.needStart = all
		if keep {
			keyReq &^= uint64(1) << (newest.pub & 63)
		}
	} else {
		// Audio: keep only the newest Keep of media time, then whatever
		// the count and byte bounds still demand.
		newest := p.at(p.n - 1).capture
		for p.n > 1 && (newest-p.at(0).capture >= int64(p.k.Keep) || p.n > p.k.MaxUnits || p.qBytes > p.k.MaxBytes) {
			p.drop(p.pop())
		}
		if p.qBytes > p.k.MaxBytes {
			p.drop(p.pop())
		}
	}
	// Repeated flushes within the window: the link is not temporarily slow.
	// A slow link is flushed at every bound crossing (about once per
	// MaxDelay) whatever its speed, and a shared link that is saturated
	// flushes every client on it; a client that still receives whole
	// frames is worth keeping either way. So the rule ejects only when the
	// window holds MaxFlushes flushes and fewer than MinFrames units were
	// completed in it (docs/relay.md). Silence ejects through the health
	// timeout.
	if !p.progress {
		p.st.idleFlushes++
	}
	p.flushTimes[p.flushNext] = now
	p.flushNext = (p.flushNext + 1) % len(p.flushTimes)
	// The slot after the newest holds the oldest of the last maxFlushes.
	if p.st.flushes >= uint64(p.maxFlushes) && now-p.flushTimes[p.flushNext] < p.flushWindow && !p.framesInWindow(now) {
		p.eject = &EjectError{Reason: "flushes"}
	}
	p.progress = false
	return keyReq
}

// take moves units from the Buffer into dst for one write: nothing while
// busy; otherwise the oldest first, until Batch messages are taken or idle
// would reach the limit, rounded up to whole units. Taking marks the write
// in flight and counts every message into idle (S12).
func (p *policy) take(dst []*unit, now int64) []*unit {
	if p.eject != nil || p.busy() {
		return dst
	}
	msgs := 0
	for p.n > 0 && msgs < p.k.Batch && p.idle+msgs < p.k.IdleLimit {
		u := p.pop()
		dst = append(dst, u)
		msgs += u.msgs
		p.sentTotal += uint64(u.msgs)
		if p.ueN == len(p.unitEnds) { // cannot happen within the idle limit; stay safe
			p.ueHead = (p.ueHead + 1) % len(p.unitEnds)
			p.ueN--
		}
		p.unitEnds[(p.ueHead+p.ueN)%len(p.unitEnds)] = p.sentTotal
		p.ueN++
		p.st.sentUnits++
		p.st.sentBytes += uint64(u.bytes())
	}
	if msgs == 0 {
		return dst
	}
	p.st.sentMsgs += uint64(msgs)
	p.inflight = true
	p.inflightSince = now
	if p.idle < p.k.HealthInterval && p.idle+msgs >= p.k.HealthInterval {
		p.owedSince = now
	}
	p.idle += msgs
	return dst
}

// written ends the write in flight.
func (p *policy) written() { p.inflight = false }

// healthCheck applies a Health Check covering count messages (S13). It
// reports whether the session may now send more.
func (p *policy) healthCheck(count uint32, now int64) bool {
	p.st.healthChecks++
	c := int(min(count, uint32(p.idle)))
	p.idle -= c
	p.ackedTotal += uint64(c)
	for p.ueN > 0 && p.unitEnds[p.ueHead] <= p.ackedTotal {
		p.ueHead = (p.ueHead + 1) % len(p.unitEnds)
		p.ueN--
		p.doneTimes[p.doneNext] = now
		p.doneNext = (p.doneNext + 1) % len(p.doneTimes)
		p.progress = true
	}
	switch {
	case p.idle < p.k.HealthInterval:
		p.owedSince = 0
	case c > 0:
		p.owedSince = now // progress: the client still owes one, from now
	}
	return p.n > 0 && !p.busy()
}

// doneRing is how many unit completion times a policy keeps: MinFrames is
// at most this.
const doneRing = 64

// framesInWindow reports whether the client completed at least minFrames
// units within the flush window before now (pro rata while the session is
// younger than the window).
func (p *policy) framesInWindow(now int64) bool {
	since := now - p.flushWindow
	need := float64(p.minFrames)
	if age := now - p.born; age < p.flushWindow {
		need *= float64(age) / float64(p.flushWindow)
	}
	n := 0
	for _, t := range p.doneTimes {
		if t >= since {
			n++
		}
	}
	return float64(n) >= need
}

// check applies the timeouts; it returns the reason to eject, if any.
func (p *policy) check(now int64) *EjectError {
	if p.eject == nil {
		switch {
		case p.inflight && now-p.inflightSince > p.writeTimeout:
			p.eject = &EjectError{Reason: "write timeout"}
		case p.owedSince != 0 && now-p.owedSince > p.healthTimeout:
			p.eject = &EjectError{Reason: "health check timeout"}
		}
	}
	return p.eject
}

// clear releases every queued unit (the session is closing).
func (p *policy) clear() {
	for p.n > 0 {
		p.pop().release()
	}
}

// ns converts a time to the policy's clock.
func ns(t time.Time) int64 { return t.UnixNano() }
