package box

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/netmon"
	"github.com/callbox/callbox/peer/proto"
	"github.com/pion/interceptor/pkg/cc"
	transport "github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// CallerConfig configures a Caller.
type CallerConfig struct {
	Client *Client
	// Media makes the media each call sends (nil: receive only).
	Media MediaFactory
	// Accept decides whether to take a call from a paired box (nil: accept all).
	Accept func(proto.PeerInfo) bool
	// RingFor, if set, makes every accepted incoming call ring (PhaseRinging)
	// until Answer, HangUp, or RingFor passes (the call ends with
	// ErrMissed). Nothing is negotiated, so no media flows, before Answer.
	// Zero: calls are answered at once.
	RingFor time.Duration
	// OnState is called on every state change, in order (from the call's
	// goroutines, one at a time; it must not block or call back into the
	// Caller).
	OnState func(State)
	// OnMedia, if set, hears the other box's media as it arrives, as RTP
	// (decrypted): one burst per whole JPEG frame and one per PCMU packet,
	// from the call's receive goroutines; it must not block. The packets
	// are valid only while OnMedia runs: copy to keep (relay.Publish does).
	OnMedia func(from proto.PeerInfo, b capture.Burst)
	// OnFrame, if set, hears every whole video frame the other box sends,
	// depacketized, not decoded: H.264 access units (Annex B, SPS and PPS
	// before each IDR; nothing after a loss until the next IDR) or JPEG.
	// CaptureTime is the sender's (abs-capture-time), or the arrival time.
	// Data is valid only while OnFrame runs.
	OnFrame func(from proto.PeerInfo, f capture.VideoFrame)
	// OnAudio, if set, hears the other box's sound decoded, 20 ms at a
	// time, in order: Opus at 48 kHz (a lost packet rebuilt from the next
	// one's in-band FEC), PCMU at 8 kHz. Samples are valid only while
	// OnAudio runs.
	OnAudio func(from proto.PeerInfo, c capture.AudioChunk)
	// DecodeVideo makes the call decode every H.264 frame it receives
	// (capture/h264dec) and count those that do not decode
	// (Summary.FramesUndecodable): `callbox call` and the NAT lab's
	// measurements. A box never decodes the call itself (its phones do).
	DecodeVideo bool
	// LegacyMedia makes the Caller behave as a box from before H.264
	// calls: RTP/JPEG and PCMU only, no congestion control (tests of the
	// fallback).
	LegacyMedia bool
	// StartBitrate, MaxBitrate bound the bandwidth estimate (bit/s;
	// DefaultStartBitrate, DefaultMaxBitrate when zero).
	StartBitrate, MaxBitrate int
	// Ladder is the video's steps (DefaultLadder when nil).
	Ladder []Step
	// MaxDatagram caps every UDP datagram of a call (S8); default 1200.
	MaxDatagram int
	// Net replaces the OS network (tests inject a pion/transport vnet).
	Net transport.Net
	// NetMonitor tells calls that the box's addresses changed (a new
	// address restarts ICE at once). The appliance shares its one monitor
	// (internal/netmon) with the board; nil: the Caller watches Net (or
	// the OS) with a monitor of its own.
	NetMonitor NetMonitor
	// LoopbackOnly gathers host candidates on loopback addresses only
	// (tests of whole appliances on one machine; never on a box).
	LoopbackOnly bool
	// ICE timing; zero values take the defaults in parentheses.
	DisconnectedTimeout time.Duration // no traffic for this long: reconnect (2 s; media flows at 50+ packets/s)
	FailedTimeout       time.Duration // (8 s)
	KeepAlive           time.Duration // ICE consent/keepalive interval; holds NAT mappings (1 s)
	SrflxWait           time.Duration // how long a direct-through-NAT pair waits for a host pair (200 ms)
	RelayWait           time.Duration // how long a relayed pair waits for a direct one (1 s)
	// SetupTimeout bounds a call's setup (default 15 s).
	SetupTimeout time.Duration
	Log          *slog.Logger
}

// Caller makes and takes calls for one box, one call at a time (a box has
// one camera). The board calls Call and HangUp; OnState drives the LED.
type Caller struct {
	cfg CallerConfig
	api *webrtc.API

	mu  sync.Mutex
	cur *Call

	// bweMu is held around NewPeerConnection, during which the congestion
	// control interceptor reports its estimator (newBWE).
	bweMu  sync.Mutex
	newBWE cc.BandwidthEstimator

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewCaller builds the WebRTC API (codecs, datagram limit, ICE timing) and
// starts handling incoming signals.
func NewCaller(cfg CallerConfig) (*Caller, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("peer: caller needs a hub client")
	}
	if cfg.MaxDatagram == 0 {
		cfg.MaxDatagram = DefaultMaxDatagram
	}
	if cfg.MaxDatagram < MinMaxDatagram {
		return nil, fmt.Errorf("peer: max datagram %d below the minimum %d", cfg.MaxDatagram, MinMaxDatagram)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.DisconnectedTimeout, 2*time.Second)
	def(&cfg.FailedTimeout, 8*time.Second)
	def(&cfg.KeepAlive, time.Second)
	def(&cfg.SrflxWait, 200*time.Millisecond)
	def(&cfg.RelayWait, time.Second)
	def(&cfg.SetupTimeout, 15*time.Second)
	if cfg.StartBitrate == 0 {
		cfg.StartBitrate = DefaultStartBitrate
	}
	if cfg.MaxBitrate == 0 {
		cfg.MaxBitrate = DefaultMaxBitrate
	}
	if cfg.StartBitrate < MinCallBitrate || cfg.MaxBitrate < cfg.StartBitrate {
		return nil, fmt.Errorf("peer: bitrates: start %d, max %d (want %d <= start <= max)", cfg.StartBitrate, cfg.MaxBitrate, MinCallBitrate)
	}
	if cfg.Ladder == nil {
		cfg.Ladder = DefaultLadder
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.OnState == nil {
		cfg.OnState = func(State) {}
	}
	if cfg.Accept == nil {
		cfg.Accept = func(proto.PeerInfo) bool { return true }
	}
	if cfg.NetMonitor == nil {
		cfg.NetMonitor = netmon.New(netSource(cfg.Net), 0)
	}
	c := &Caller{cfg: cfg, done: make(chan struct{})}
	api, err := newAPI(&cfg, func(e cc.BandwidthEstimator) { c.newBWE = e })
	if err != nil {
		return nil, err
	}
	c.api = api
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cfg.Client.OnPresence(c.presence)
	go c.loop()
	return c, nil
}

// presence resumes a call whose path was lost when its peer (or this box)
// is back on the hub: signals sent while one of them was reconnecting to
// the hub were lost, so the restart is signalled again.
func (c *Caller) presence(id string, online bool) {
	cur := c.Current()
	if !online || cur == nil || cur.Peer.ID != id || cur.State().Phase != PhaseReconnecting {
		return
	}
	cur.mu.Lock()
	offerer := cur.offerer
	cur.restartAt = time.Now()
	cur.mu.Unlock()
	if offerer {
		go cur.offer(true)
	} else {
		go cur.ring()
	}
}

// Close hangs up and stops the caller (not the hub client).
func (c *Caller) Close() error {
	c.HangUp()
	c.cancel()
	<-c.done
	return nil
}

// Current returns the active call, or nil.
func (c *Caller) Current() *Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// HangUp ends the active call, telling the peer.
func (c *Caller) HangUp() {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		cur.hangUp(nil, true)
	}
}

// Call calls a paired box (by ID or name) and returns the call at once;
// watch State, Done and Summary for its progress. Of two boxes the one with
// the smaller ID always makes the offer: the other sends a ring, so two
// boxes calling each other at the same moment make one call, not two.
func (c *Caller) Call(ctx context.Context, peer string) (*Call, error) {
	p, err := c.cfg.Client.Resolve(peer)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.cur != nil {
		cur := c.cur
		c.mu.Unlock()
		if cur.Peer.ID == p.ID {
			return cur, nil // already calling (or called by) this peer
		}
		return nil, fmt.Errorf("peer: busy with a call to %s", cur.Peer.ID)
	}
	call := c.newCallLocked(p, newCallID(), c.cfg.Client.ID() < p.ID, false)
	c.mu.Unlock()
	go func() {
		// Signalling a box that is not connected to the hub would be lost:
		// wait for it (the call's setup timeout still applies).
		if err := c.cfg.Client.WaitOnline(call.ctx, p.ID); err != nil {
			return
		}
		call.start.Store(time.Now().UnixNano()) // waiting for the peer to come online is not setup time
		if call.isOfferer() {
			if call.offered.CompareAndSwap(false, true) {
				call.offer(false)
			}
		} else {
			call.ring()
		}
	}()
	return call, nil
}

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Caller) newCallLocked(p proto.PeerInfo, id string, offerer, ringing bool) *Call {
	call := &Call{
		caller:  c,
		Peer:    p,
		id:      id,
		offerer: offerer,
		ringing: ringing,
		extend:  make(chan time.Duration, 1),
		done:    make(chan struct{}),
	}
	call.start.Store(time.Now().UnixNano())
	call.ctx, call.cancel = context.WithCancel(c.ctx)
	go call.watchAddrs()
	c.cur = call
	first := c.cfg.SetupTimeout
	if ringing {
		first = c.cfg.RingFor
		call.setState(PhaseRinging, PathNone, nil)
	} else {
		call.setState(PhaseCalling, PathNone, nil)
	}
	go func() {
		// A call that never connects ends on its own: an unanswered one
		// after RingFor (missed), another after SetupTimeout, counted again
		// from when it is answered (or from the peer's "ringing").
		t := time.NewTimer(first)
		defer t.Stop()
		limit := first
		for {
			select {
			case <-t.C:
				if call.connectedOnce.Load() {
					return
				}
				if call.isRinging() {
					call.hangUp(fmt.Errorf("%w: from %s, not answered within %v", ErrMissed, p.ID, c.cfg.RingFor), true)
					return
				}
				call.hangUp(fmt.Errorf("peer: no connection to %s within %v", p.ID, limit), true)
				return
			case d := <-call.extend:
				limit = d
				t.Reset(d)
			case <-call.done:
				return
			}
		}
	}()
	return call
}

// ErrMissed ends an incoming call that rang for CallerConfig.RingFor
// without an answer.
var ErrMissed = errors.New("peer: missed call")

// ErrNotRinging: Answer without an incoming call ringing.
var ErrNotRinging = errors.New("peer: no call is ringing")

// MaxRingWait is how long a caller waits for the other box to answer once
// it reports that the call rings there (the callee ends the ring itself
// after its own RingFor, which should be shorter).
const MaxRingWait = 10 * time.Minute

func (call *Call) isRinging() bool {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.ringing
}

// resetSetup restarts the call's setup timer with d.
func (call *Call) resetSetup(d time.Duration) {
	select {
	case <-call.extend:
	default:
	}
	call.extend <- d
}

// Answer takes the incoming call that is ringing: the negotiation the
// peer asked for starts now.
func (c *Caller) Answer() error {
	cur := c.Current()
	if cur == nil {
		return ErrNotRinging
	}
	cur.mu.Lock()
	if !cur.ringing {
		cur.mu.Unlock()
		return ErrNotRinging
	}
	cur.ringing = false
	held := cur.held
	cur.held = nil
	cur.mu.Unlock()
	cur.start.Store(time.Now().UnixNano()) // the setup figures count from the answer
	cur.resetSetup(c.cfg.SetupTimeout)
	cur.setState(PhaseCalling, PathNone, nil)
	if held != nil {
		c.dispatch(cur, *held)
	}
	return nil
}

// loop handles signals from paired boxes.
func (c *Caller) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case s := <-c.cfg.Client.Signals():
			c.handle(s)
		}
	}
}

func (c *Caller) handle(s Signal) {
	p, err := c.cfg.Client.Resolve(s.From)
	if err != nil {
		return // dispatch only passes pinned peers; a race with unpairing
	}
	c.mu.Lock()
	cur := c.cur
	if cur != nil && cur.Peer.ID != s.From {
		c.mu.Unlock()
		if s.Kind != proto.KindBye {
			c.cfg.Log.Info("busy: refusing a call", "from", s.From)
			go c.cfg.Client.SendSignal(c.ctx, s.From, s.Call, proto.KindBye, "")
		}
		return
	}
	if cur == nil {
		if s.Kind != proto.KindOffer && s.Kind != proto.KindRing {
			c.mu.Unlock()
			return
		}
		if !c.cfg.Accept(p) {
			c.mu.Unlock()
			go c.cfg.Client.SendSignal(c.ctx, s.From, s.Call, proto.KindBye, "")
			return
		}
		ringing := c.cfg.RingFor > 0
		cur = c.newCallLocked(p, s.Call, s.Kind == proto.KindRing, ringing)
		if ringing {
			cur.setCallID(s.Call)
			go c.cfg.Client.SendSignal(cur.ctx, s.From, s.Call, proto.KindRinging, "")
		}
	}
	c.mu.Unlock()

	if s.Kind != proto.KindBye {
		cur.mu.Lock()
		if cur.ringing {
			// Not answered yet: nothing is negotiated. The peer's latest
			// offer (or ring) waits for Answer.
			if s.Kind == proto.KindOffer || s.Kind == proto.KindRing {
				cur.held = &s
			}
			cur.mu.Unlock()
			return
		}
		cur.mu.Unlock()
	}
	c.dispatch(cur, s)
}

// dispatch handles a signal for the call in progress.
func (c *Caller) dispatch(cur *Call, s Signal) {
	switch s.Kind {
	case proto.KindOffer:
		if !cur.connectedOnce.Load() {
			cur.resetSetup(c.cfg.SetupTimeout) // answered at the other box
		}
		if cur.isOfferer() {
			// Glare: both offered. The smaller ID's offer stands.
			if c.cfg.Client.ID() < s.From {
				return
			}
			cur.becomeAnswerer()
		}
		go cur.answer(s)
	case proto.KindRinging:
		// The call rings at the other box: wait for someone there to
		// answer (that box ends the ring itself when nobody does).
		if !cur.connectedOnce.Load() {
			cur.resetSetup(MaxRingWait)
			c.cfg.Log.Info("the call rings at the other box", "peer", s.From)
		}
	case proto.KindAnswer:
		if cur.isOfferer() && s.Call == cur.callID() {
			cur.resetSetup(c.cfg.SetupTimeout)
			go cur.applyAnswer(s)
		}
	case proto.KindRing:
		switch {
		case !cur.isOfferer():
		case cur.offered.CompareAndSwap(false, true):
			// The first ring: this box makes the offer, under the ring's call ID.
			cur.setCallID(s.Call)
			go cur.offer(false)
		case cur.connectedOnce.Load():
			// A ring on a call that was connected asks for an ICE restart:
			// the answerer lost connectivity (a network change). This box
			// may have started one already.
			if cur.restartDue() {
				go cur.offer(true)
			}
		}
		// Otherwise this box's own offer is already on its way.

	case proto.KindBye:
		cur.hangUp(fmt.Errorf("peer: %s hung up", s.From), false)
	}
}
