package relay

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
)

// Unit is a queued media unit (one whole video frame or audio chunk) as a
// transport outside this package sees it: read-only, and valid only during
// the WriteUnits call that passed it unless the transport takes a reference
// with Ref (and gives it back with Release), as a retransmission history
// does.
type Unit = unit

// Packets is the number of RTP packets of the unit.
func (u *unit) Packets() int { return u.msgs }

// Packet returns the i-th RTP packet, as the publisher marshalled it.
func (u *unit) Packet(i int) []byte { return u.packet(i) }

// Start reports whether a decoder can start at this unit (video: JPEG
// always, H.264 an IDR; audio: always).
func (u *unit) Start() bool { return u.start }

// CaptureNanos is the unit's capture time, Unix nanoseconds.
func (u *unit) CaptureNanos() int64 { return u.capture }

// Ref takes a reference: the unit stays valid until the matching Release.
func (u *unit) Ref() { u.ref() }

// Release gives a reference back.
func (u *unit) Release() { u.release() }

// PacketConn is a client connection whose transport lives outside this
// package (relay/webrtc): the relay's policy decides what to send and when,
// the PacketConn only puts packets on the wire. The policy's Health Checks
// come from the transport's own feedback through Client.Ack.
type PacketConn interface {
	// WriteUnits sends every packet of units, in order, each unit whole.
	// The relay calls it from the session's writer goroutine, never from
	// Publish, so it may block (a full socket buffer) for up to the
	// relay's WriteTimeout.
	WriteUnits(units []*Unit) error
	// Abort ends the connection at once (the relay ejected the client or
	// is closing).
	Abort()
	// RemoteAddr names the client in logs.
	RemoteAddr() string
}

// Client is one session of a PacketConn: one client, one media kind.
type Client struct {
	s *session
	t *extTransport
}

// AttachOptions are a PacketConn session's own settings.
type AttachOptions struct {
	// Policy is the kind's pacing parameters; zero fields take the
	// relay's own for that kind.
	Policy KindConfig
	// Codec, when set, is the only video codec the client can use: units
	// of another (the box may publish JPEG for the WebSocket page beside
	// H.264) are not offered to it.
	Codec capture.Codec
	// Opus: an audio client that takes the Opus stream the box publishes
	// beside PCMU (capture.PayloadTypeOpus) instead of PCMU. Every other
	// audio session (TCP, WebSocket, RTSP) gets PCMU only.
	Opus bool
	// Owner is the client's phone (see Config.Owner), for DisconnectOwner.
	Owner string
}

// Attach starts a session for c under the relay's policy: the same Buffer,
// idle arithmetic, flush by kind and disconnect rules as TCP and WebSocket
// clients (design S11-S15), with opt's parameters. The session receives
// from the next Publish on.
func (r *Relay) Attach(kind capture.Kind, c PacketConn, opt AttachOptions) (*Client, error) {
	k := opt.Policy
	if kind != capture.KindVideo && kind != capture.KindAudio {
		return nil, fmt.Errorf("relay: attach of kind %d", kind)
	}
	k = k.WithDefaults(*r.cfg.kind(kind))
	if k.IdleLimit < k.HealthInterval || k.MaxUnits > 4096 || k.MaxUnits < 1 || k.Batch < 1 {
		return nil, fmt.Errorf("%w: attach: idle limit %d, health interval %d, max units %d, batch %d",
			ErrConfig, k.IdleLimit, k.HealthInterval, k.MaxUnits, k.Batch)
	}
	t := &extTransport{c: c, signal: make(chan struct{}, 1), closed: make(chan struct{})}
	s := r.newSessionWith(kind, t, &k)
	s.owner = opt.Owner
	if kind == capture.KindVideo {
		s.only = opt.Codec
	} else {
		s.opus = opt.Opus
	}
	if err := r.add(s); err != nil {
		return nil, err
	}
	r.activate(s)
	go s.run()
	return &Client{s: s, t: t}, nil
}

// Ack is the Health Check (S13) of a transport whose client acknowledges
// with its own feedback (WebRTC: transport-wide congestion control): n more
// of the packets sent to the client have been acknowledged. It never blocks.
func (c *Client) Ack(n int) {
	if n <= 0 {
		return
	}
	c.t.acks.Add(uint64(n))
	c.t.poke()
}

// RequestKeyframe passes on the client's request for a frame a decoder can
// start from (RTCP PLI or FIR), rate-limited by the relay like the requests
// of flushed sessions.
func (c *Client) RequestKeyframe() {
	c.t.pli.Store(true)
	c.t.poke()
}

// Close ends the session: the client went away.
func (c *Client) Close() { c.t.closeOnce.Do(func() { close(c.t.closed) }) }

// Done is closed when the session has ended, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.s.done }

// Err says why the session ended (an *EjectError when the relay ejected
// it); nil while it runs.
func (c *Client) Err() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.why
}

// ClientStats are a session's counters.
type ClientStats struct {
	SentPackets, SentUnits       uint64
	DroppedPackets, DroppedUnits uint64
	Flushes, IdleFlushes         uint64
	Acks                         uint64 // Health Checks applied
	Idle                         int    // packets sent and not yet acknowledged
}

// Stats returns the session's counters.
func (c *Client) Stats() ClientStats {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.s.pol.st
	return ClientStats{
		SentPackets: st.sentMsgs, SentUnits: st.sentUnits,
		DroppedPackets: st.dropMsgs, DroppedUnits: st.dropUnits,
		Flushes: st.flushes, IdleFlushes: st.idleFlushes, Acks: st.healthChecks,
		Idle: c.s.pol.idle,
	}
}

// extTransport adapts a PacketConn to the session: writes go to the
// PacketConn from the session's writer goroutine; the client's feedback
// comes back as the relay's own control messages (CBHC, PLI), so the
// session applies it exactly as it does a TCP client's.
type extTransport struct {
	c         PacketConn
	acks      atomic.Uint64
	pli       atomic.Bool
	signal    chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	pendU     []*unit
	nb        bool // the pending write is a NonBlockingConn's
}

func (t *extTransport) poke() {
	select {
	case t.signal <- struct{}{}:
	default:
	}
}

// write ignores ctrl: CBTR answers CBTQ, which only the relay's own
// protocol sends.
func (t *extTransport) write(units []*unit, _ []byte) error {
	if len(units) == 0 {
		return nil
	}
	return t.c.WriteUnits(units)
}

// tryWrite hands every write to the session's writer goroutine: a UDP
// socket with a full send buffer blocks, and Publish must never wait on
// a client.
// A NonBlockingConn writes at once what its socket takes.
func (t *extTransport) tryWrite(units []*unit, ctrl []byte) (bool, error) {
	if nb, ok := t.c.(NonBlockingConn); ok {
		if len(units) == 0 {
			return true, nil
		}
		t.nb = true
		return nb.TryWriteUnits(units)
	}
	t.pendU = units
	return false, nil
}

func (t *extTransport) finish() error {
	if t.nb {
		t.nb = false
		return t.c.(NonBlockingConn).FinishUnits()
	}
	err := t.write(t.pendU, nil)
	t.pendU = nil
	return err
}

func (t *extTransport) read(buf []byte) ([]byte, error) {
	for {
		if n := t.acks.Swap(0); n > 0 {
			return wire.AppendHealthCheck(buf[:0], uint32(min(n, math.MaxUint32)), 0), nil
		}
		if t.pli.Swap(false) {
			return wire.AppendPLI(buf[:0], 0, 0), nil
		}
		select {
		case <-t.signal:
		case <-t.closed:
			return nil, io.EOF
		}
	}
}

func (t *extTransport) abort() {
	t.closeOnce.Do(func() { close(t.closed) })
	t.c.Abort()
}

func (t *extTransport) remote() string { return t.c.RemoteAddr() }

// NewUnit copies b into a unit with one reference held by the caller, as
// Publish does; for transports' tests and benchmarks.
func NewUnit(b capture.Burst) (*Unit, error) {
	if err := checkBurst(&b); err != nil {
		return nil, err
	}
	return newUnit(&b, 0), nil
}
