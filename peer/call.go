package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	transport "github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Datagram budget (S8). A media datagram on the wire is the RTP packet,
// plus the SRTP authentication tag (16 bytes with AEAD_AES_128_GCM, 10 with
// AES_CM_128_HMAC_SHA1_80), plus, through a relay, a TURN Send indication
// (20-byte STUN header, 12-byte XOR-PEER-ADDRESS, 4-byte DATA header, up
// to 3 bytes of padding; ChannelData needs only 4). Budgeting the worst
// case keeps every datagram within MaxDatagram on every path.
const (
	srtpOverhead = 16
	turnOverhead = 40
	// DefaultMaxDatagram is the default datagram limit: the RTP size the
	// rest of callbox uses (capture.DefaultMaxPacketSize).
	DefaultMaxDatagram = capture.DefaultMaxPacketSize
	// MinMaxDatagram is the smallest limit accepted: DTLS handshake
	// flights from pion are fragmented at 1200 bytes and cannot be made
	// smaller through webrtc's SettingEngine, so a lower limit would be a
	// promise the call breaks during setup.
	MinMaxDatagram = 1200
)

// MaxRTPPacket is the largest RTP packet that fits maxDatagram after SRTP
// and TURN overhead.
func MaxRTPPacket(maxDatagram int) int { return maxDatagram - srtpOverhead - turnOverhead }

// Path says how a call's media travels.
type Path string

const (
	PathNone  Path = ""      // not connected
	PathHost  Path = "host"  // private addresses on one LAN (S5)
	PathSrflx Path = "srflx" // straight through the NATs (S3, S4; includes peer-reflexive)
	PathRelay Path = "relay" // through the hub's TURN relay (S6)
)

// Phase is where a call is in its life.
type Phase string

const (
	PhaseCalling      Phase = "calling"      // signalling and ICE in progress
	PhaseConnected    Phase = "connected"    // media flowing on Path
	PhaseReconnecting Phase = "reconnecting" // connectivity lost; ICE restart under way
	PhaseEnded        Phase = "ended"
)

// State is what the LED and the page show: the phase, the peer, and whether
// the call is direct or relayed.
type State struct {
	Phase Phase
	Peer  string // box ID
	Name  string // the peer's name, if known
	Path  Path
	Err   error // why the call ended, if not by a hang-up
}

// CallerConfig configures a Caller.
type CallerConfig struct {
	Client *Client
	// Media makes the media each call sends (nil: receive only).
	Media MediaFactory
	// Accept decides whether to take a call from a paired box (nil: accept all).
	Accept func(PeerInfo) bool
	// OnState is called on every state change, in order (from the call's
	// goroutines, one at a time; it must not block or call back into the
	// Caller).
	OnState func(State)
	// OnMedia, if set, hears the other box's media as it arrives, as RTP
	// (decrypted): one burst per whole JPEG frame and one per PCMU packet,
	// from the call's receive goroutines; it must not block. The packets
	// are valid only while OnMedia runs: copy to keep (relay.Publish does).
	OnMedia func(from PeerInfo, b capture.Burst)
	// MaxDatagram caps every UDP datagram of a call (S8); default 1200.
	MaxDatagram int
	// Net replaces the OS network (tests inject a pion/transport vnet).
	Net transport.Net
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
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.OnState == nil {
		cfg.OnState = func(State) {}
	}
	if cfg.Accept == nil {
		cfg.Accept = func(PeerInfo) bool { return true }
	}
	api, err := newAPI(&cfg)
	if err != nil {
		return nil, err
	}
	c := &Caller{cfg: cfg, api: api, done: make(chan struct{})}
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

func newAPI(cfg *CallerConfig) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	// JPEG (RFC 2435) has the static payload type 26; pion has no built-in
	// entry for it, so it is registered by hand, as is PCMU with its static 0.
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeJPEG, ClockRate: capture.VideoClockRate},
		PayloadType:        capture.PayloadTypeJPEG,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("peer: register JPEG: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: capture.PCMUClockRate, Channels: 1},
		PayloadType:        capture.PayloadTypePCMU,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("peer: register PCMU: %w", err)
	}
	var se webrtc.SettingEngine
	lf := logging.NewDefaultLoggerFactory()
	// pion warns about every closed socket at hang-up; errors are enough.
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	se.SetReceiveMTU(uint(cfg.MaxDatagram))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // boxes learn addresses from signed SDPs, not mDNS
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, cfg.KeepAlive)
	se.SetHostAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(cfg.SrflxWait)
	se.SetPrflxAcceptanceMinWait(cfg.SrflxWait)
	se.SetRelayAcceptanceMinWait(cfg.RelayWait)
	se.SetSTUNGatherTimeout(2 * time.Second)
	// The call closes its PeerConnection itself, after its stats sampler has
	// stopped: pion's own close on a DTLS close_notify races with GetStats.
	se.DisableCloseByDTLS(true)
	// No interceptors: they would add header extensions (TWCC) that the
	// datagram budget does not account for; the JPEG and PCMU streams need
	// no congestion feedback to be decoded.
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)), nil
}

const mimeJPEG = "video/JPEG"

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
	call := c.newCallLocked(p, newCallID(), c.cfg.Client.ID() < p.ID)
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

func (c *Caller) newCallLocked(p PeerInfo, id string, offerer bool) *Call {
	call := &Call{
		caller:  c,
		Peer:    p,
		id:      id,
		offerer: offerer,
		done:    make(chan struct{}),
	}
	call.start.Store(time.Now().UnixNano())
	call.ctx, call.cancel = context.WithCancel(c.ctx)
	go call.watchAddrs()
	c.cur = call
	call.setState(PhaseCalling, PathNone, nil)
	go func() {
		// A call that never connects ends on its own.
		select {
		case <-time.After(c.cfg.SetupTimeout):
			if !call.connectedOnce.Load() {
				call.hangUp(fmt.Errorf("peer: no connection to %s within %v", p.ID, c.cfg.SetupTimeout), true)
			}
		case <-call.done:
		}
	}()
	return call
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
		if s.Kind != KindBye {
			c.cfg.Log.Info("busy: refusing a call", "from", s.From)
			go c.cfg.Client.SendSignal(c.ctx, s.From, s.Call, KindBye, "")
		}
		return
	}
	if cur == nil {
		if s.Kind != KindOffer && s.Kind != KindRing {
			c.mu.Unlock()
			return
		}
		if !c.cfg.Accept(p) {
			c.mu.Unlock()
			go c.cfg.Client.SendSignal(c.ctx, s.From, s.Call, KindBye, "")
			return
		}
		cur = c.newCallLocked(p, s.Call, s.Kind == KindRing)
	}
	c.mu.Unlock()

	switch s.Kind {
	case KindOffer:
		if cur.isOfferer() {
			// Glare: both offered. The smaller ID's offer stands.
			if c.cfg.Client.ID() < s.From {
				return
			}
			cur.becomeAnswerer()
		}
		go cur.answer(s)
	case KindAnswer:
		if cur.isOfferer() && s.Call == cur.callID() {
			go cur.applyAnswer(s)
		}
	case KindRing:
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

	case KindBye:
		cur.hangUp(fmt.Errorf("peer: %s hung up", s.From), false)
	}
}

// Call is one call with one paired box.
type Call struct {
	caller  *Caller
	Peer    PeerInfo
	start   atomic.Int64 // Unix ns when the call was signalled: the zero of the *MS figures
	offerer bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	neg      sync.Mutex     // serializes negotiations (offer/answer, restart)
	notify   sync.Mutex     // serializes state changes with their OnState calls
	sampling sync.WaitGroup // the stats sampler

	mu        sync.Mutex
	id        string
	pc        *webrtc.PeerConnection
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP
	media     *Media
	state     State
	restartAt time.Time

	connectedOnce atomic.Bool
	offered       atomic.Bool // the first offer is made (once: by Call or by the peer's ring)
	restarts      atomic.Int32
	connectAt     atomic.Int64 // ns since start
	firstMedia    atomic.Int64
	firstFrame    atomic.Int64
	lastFrame     atomic.Int64
	lostAt        atomic.Int64 // when ICE reported the path lost (0: not lost)
	recovery      atomic.Int64 // from the last loss to connected again

	framesRecv, framesDecoded, framesLost atomic.Uint64
	audioRecv, audioLost                  atomic.Uint64
	framesSent, audioSent                 atomic.Uint64
	maxPacket                             atomic.Int64
	relayBytes                            atomic.Uint64 // closed relayed pairs
	pairBytes                             atomic.Uint64 // current pair, if relayed
	localCand, remoteCand                 atomic.Value  // string
	lastPair                              atomic.Value  // *webrtc.ICECandidatePair
}

func (call *Call) callID() string {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.id
}

func (call *Call) setCallID(id string) {
	call.mu.Lock()
	call.id = id
	call.mu.Unlock()
}

func (call *Call) isOfferer() bool {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.offerer
}

func (call *Call) hasPC() bool {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.pc != nil
}

func (call *Call) becomeAnswerer() {
	call.mu.Lock()
	pc := call.pc
	call.pc = nil
	call.offerer = false
	call.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// Done is closed when the call has ended.
func (call *Call) Done() <-chan struct{} { return call.done }

// State returns the call's current state.
func (call *Call) State() State {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.state
}

// setState records a state and reports it. Changes come from several
// goroutines (pion's ICE state and selected-pair callbacks, the address
// watch, hang-up): notify makes OnState hear them in the order they were
// made, and a connected state whose path is not known yet takes the
// selected pair's, so the ICE state callback (which reads the path before
// the pair callback stores it) cannot undo the path just reported.
func (call *Call) setState(ph Phase, path Path, err error) {
	call.notify.Lock()
	defer call.notify.Unlock()
	if ph == PhaseConnected && path == PathNone {
		path = call.lastPath()
	}
	call.mu.Lock()
	if call.state.Phase == PhaseEnded {
		call.mu.Unlock()
		return
	}
	st := State{Phase: ph, Peer: call.Peer.ID, Name: call.Peer.Name, Path: path, Err: err}
	changed := st.Phase != call.state.Phase || st.Path != call.state.Path
	call.state = st
	call.mu.Unlock()
	if changed {
		call.caller.cfg.Log.Info("call state", "peer", st.Peer, "phase", st.Phase, "path", st.Path, "err", err)
		call.caller.cfg.OnState(st)
	}
}

func (call *Call) since() int64 { return time.Now().UnixNano() - call.start.Load() }

func (call *Call) signal(kind, sdp string) error {
	ctx, cancel := context.WithTimeout(call.ctx, 10*time.Second)
	defer cancel()
	return call.caller.cfg.Client.SendSignal(ctx, call.Peer.ID, call.callID(), kind, sdp)
}

func (call *Call) ring() {
	if err := call.signal(KindRing, ""); err != nil {
		if call.connectedOnce.Load() {
			// A restart request lost with a dying hub connection: it is
			// sent again when the hub reports the peer (or this box) back.
			call.caller.cfg.Log.Warn("restart request not sent", "err", err)
			return
		}
		call.hangUp(fmt.Errorf("peer: ring %s: %w", call.Peer.ID, err), false)
	}
}

// ensurePC creates the PeerConnection with the call's tracks and starts
// sending media.
func (call *Call) ensurePC() (*webrtc.PeerConnection, error) {
	call.mu.Lock()
	defer call.mu.Unlock()
	if call.pc != nil {
		return call.pc, nil
	}
	cfg := call.caller.cfg
	var servers []webrtc.ICEServer
	for _, s := range cfg.Client.ICEServers() {
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	pc, err := call.caller.api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		return nil, fmt.Errorf("peer: new peer connection: %w", err)
	}
	// The tracks outlive a PeerConnection (glare replaces it): the media
	// goroutines keep writing to the same tracks.
	if call.video == nil {
		if call.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mimeJPEG, ClockRate: capture.VideoClockRate}, "video", "callbox"); err != nil {
			pc.Close()
			return nil, fmt.Errorf("peer: video track: %w", err)
		}
		if call.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: capture.PCMUClockRate, Channels: 1}, "audio", "callbox"); err != nil {
			pc.Close()
			return nil, fmt.Errorf("peer: audio track: %w", err)
		}
	}
	video, audio := call.video, call.audio
	for _, t := range []*webrtc.TrackLocalStaticRTP{video, audio} {
		// sendrecv transceivers: the answerer's own tracks then ride on the
		// offerer's m-lines.
		if _, err := pc.AddTrack(t); err != nil {
			pc.Close()
			return nil, fmt.Errorf("peer: add track: %w", err)
		}
	}
	pc.OnTrack(call.receive)
	pc.OnICEConnectionStateChange(call.iceState)
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(call.pairChanged)
	call.pc = pc
	call.sampling.Add(1)
	go func() {
		// Sample the relayed byte count now and then, so that it survives
		// an ICE restart.
		defer call.sampling.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-call.ctx.Done():
				return
			case <-t.C:
				call.samplePairBytes()
			}
		}
	}()
	if cfg.Media != nil && call.media == nil {
		m, err := cfg.Media(MaxRTPPacket(cfg.MaxDatagram))
		if err != nil {
			pc.Close()
			call.pc = nil
			return nil, err
		}
		call.media = m
		go call.sendVideo(m, video)
		go call.sendAudio(m, audio)
	}
	return pc, nil
}

// localDescription sets d and waits for candidate gathering to finish, so
// the SDP sent carries every candidate (host, srflx, relay) at once and the
// signature covers them all.
func (call *Call) localDescription(pc *webrtc.PeerConnection, d webrtc.SessionDescription) (string, error) {
	gathered := make(chan struct{})
	var once sync.Once
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	if err := pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("peer: set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		call.caller.cfg.Log.Warn("candidate gathering incomplete; sending what there is")
	case <-call.ctx.Done():
		return "", call.ctx.Err()
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", fmt.Errorf("peer: no local description")
	}
	return ld.SDP, nil
}

// offer makes an offer (an ICE restart if restart) and sends it.
func (call *Call) offer(restart bool) {
	call.neg.Lock()
	defer call.neg.Unlock()
	pc, err := call.ensurePC()
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// An earlier offer went unanswered: it may have been lost with the
		// peer's old hub connection. pion cannot roll a local offer back,
		// so the pending one (gathered after the path was lost, so with the
		// current addresses) is sent again.
		if ld := pc.LocalDescription(); ld != nil {
			if err := call.signal(KindOffer, ld.SDP); err != nil {
				call.caller.cfg.Log.Warn("offer not sent", "err", err)
			}
		}
		return
	}
	if restart {
		call.restarts.Add(1)
	}
	o, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		call.hangUp(fmt.Errorf("peer: create offer: %w", err), true)
		return
	}
	sdp, err := call.localDescription(pc, o)
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if err := call.signal(KindOffer, sdp); err != nil {
		call.caller.cfg.Log.Warn("offer not sent", "err", err)
	}
}

func (call *Call) applyAnswer(s Signal) {
	call.neg.Lock()
	defer call.neg.Unlock()
	call.mu.Lock()
	pc := call.pc
	call.mu.Unlock()
	if pc == nil || pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.SDP}); err != nil {
		call.hangUp(fmt.Errorf("peer: answer from %s: %w", s.From, err), true)
	}
}

func (call *Call) answer(s Signal) {
	call.neg.Lock()
	defer call.neg.Unlock()
	call.setCallID(s.Call)
	pc, err := call.ensurePC()
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.SDP}); err != nil {
		call.hangUp(fmt.Errorf("peer: offer from %s: %w", s.From, err), true)
		return
	}
	a, err := pc.CreateAnswer(nil)
	if err != nil {
		call.hangUp(fmt.Errorf("peer: create answer: %w", err), true)
		return
	}
	sdp, err := call.localDescription(pc, a)
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if err := call.signal(KindAnswer, sdp); err != nil {
		call.caller.cfg.Log.Warn("answer not sent", "err", err)
	}
}

// iceState reacts to connectivity: a lost path (a network change, a NAT
// that dropped its mapping) is re-established with an ICE restart, made by
// the offerer, or requested by the answerer with a ring.
func (call *Call) iceState(s webrtc.ICEConnectionState) {
	switch s {
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		if call.connectedOnce.CompareAndSwap(false, true) {
			call.connectAt.Store(call.since())
		}
		if lost := call.lostAt.Swap(0); lost != 0 {
			call.recovery.Store(call.since() - lost)
		}
		call.setState(PhaseConnected, call.path(), nil)
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed:
		if !call.connectedOnce.Load() && s == webrtc.ICEConnectionStateDisconnected {
			return
		}
		call.setState(PhaseReconnecting, PathNone, nil)
		call.lostAt.CompareAndSwap(0, call.since())
		if !call.restartDue() {
			return
		}
		call.mu.Lock()
		offerer := call.offerer
		call.mu.Unlock()
		go func() {
			// The hub connection may have died with the path (a new
			// address): make sure the restart does not go into a dead socket.
			_ = call.caller.cfg.Client.Check(time.Second)
			if offerer {
				call.offer(true)
			} else {
				call.ring()
			}
		}()
	}
}

// restartDue allows one ICE restart at a time: a restart that has not
// helped within a few seconds may be followed by another.
func (call *Call) restartDue() bool {
	call.mu.Lock()
	defer call.mu.Unlock()
	if time.Since(call.restartAt) < 4*time.Second {
		return false
	}
	call.restartAt = time.Now()
	return true
}

func candString(c *webrtc.ICECandidate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s %s:%d", c.Typ, c.Address, c.Port)
}

// pathOf classifies a selected pair. Two host candidates are a LAN path
// (S5) when both addresses are private, or a path with no NAT at all (S1)
// when both are public; a private host candidate talking to a public one
// goes through a NAT and counts as srflx, like peer-reflexive pairs.
func pathOf(local, remote *webrtc.ICECandidate) Path {
	switch {
	case local.Typ == webrtc.ICECandidateTypeRelay || remote.Typ == webrtc.ICECandidateTypeRelay:
		return PathRelay
	case local.Typ == webrtc.ICECandidateTypeHost && remote.Typ == webrtc.ICECandidateTypeHost &&
		isPrivate(local.Address) == isPrivate(remote.Address):
		return PathHost
	}
	return PathSrflx
}

func isPrivate(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast())
}

func (call *Call) pairChanged(p *webrtc.ICECandidatePair) {
	if p == nil || p.Local == nil || p.Remote == nil {
		return
	}
	call.lastPair.Store(p)
	call.localCand.Store(candString(p.Local))
	call.remoteCand.Store(candString(p.Remote))
	if call.connectedOnce.Load() {
		call.setState(PhaseConnected, pathOf(p.Local, p.Remote), nil)
	}
}

// path is the path of the selected candidate pair, as last reported by
// pion's callback. (ICETransport.GetSelectedCandidatePair is not safe to
// call while the transport starts: it races with Start in pion v4.2.)
func (call *Call) path() Path { return call.lastPath() }

// samplePairBytes sums the bytes of the candidate pairs that use a relayed
// candidate, from pion's stats report (which, unlike the ICETransport
// accessors, is safe to read at any time).
func (call *Call) samplePairBytes() {
	call.mu.Lock()
	pc := call.pc
	call.mu.Unlock()
	if pc == nil {
		return
	}
	rep := pc.GetStats()
	relayed := map[string]bool{}
	for _, st := range rep {
		switch c := st.(type) {
		case webrtc.ICECandidateStats:
			if c.CandidateType == webrtc.ICECandidateTypeRelay {
				relayed[c.ID] = true
			}
		}
	}
	var n uint64
	for _, st := range rep {
		if p, ok := st.(webrtc.ICECandidatePairStats); ok && (relayed[p.LocalCandidateID] || relayed[p.RemoteCandidateID]) {
			n += p.BytesSent + p.BytesReceived
		}
	}
	// Pairs vanish with an ICE restart: keep what they carried.
	if old := call.pairBytes.Load(); n < old {
		call.relayBytes.Add(old)
	}
	call.pairBytes.Store(n)
}

func (call *Call) notePacket(n int) {
	for {
		old := call.maxPacket.Load()
		if int64(n) <= old || call.maxPacket.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

func (call *Call) sendVideo(m *Media, t *webrtc.TrackLocalStaticRTP) {
	for {
		f, err := m.Video.ReadFrame(call.ctx)
		if err != nil {
			return
		}
		b, err := m.VideoPacketizer.Packetize(f)
		if err != nil {
			call.caller.cfg.Log.Warn("video frame not sent", "err", err)
			continue
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			_, _ = t.Write(p) // no binding yet (still connecting) is not an error worth logging
		}
		call.framesSent.Add(1)
	}
}

func (call *Call) sendAudio(m *Media, t *webrtc.TrackLocalStaticRTP) {
	for {
		c, err := m.Audio.ReadChunk(call.ctx)
		if err != nil {
			return
		}
		b, err := m.AudioPacketizer.Packetize(c)
		if err != nil {
			call.caller.cfg.Log.Warn("audio chunk not sent", "err", err)
			continue
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			_, _ = t.Write(p)
		}
		call.audioSent.Add(1)
	}
}

// receive depacketizes the peer's media: JPEG frames are reassembled and
// decoded (proof they arrived whole), PCMU packets decoded.
func (call *Call) receive(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	mime := strings.ToLower(tr.Codec().MimeType)
	jd := rtpjpeg.NewDepacketizer()
	ad := pcmu.NewDepacketizer()
	onMedia := call.caller.cfg.OnMedia
	var frame [][]byte // the packets of the frame being received, for OnMedia
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		call.firstMedia.CompareAndSwap(0, call.since())
		switch mime {
		case strings.ToLower(mimeJPEG):
			if onMedia != nil && n >= 12 {
				// A packet of another frame (RTP timestamp) starts over:
				// the rest of an incomplete frame is never passed on.
				if len(frame) > 0 && !bytes.Equal(frame[0][4:8], buf[4:8]) {
					frame = frame[:0]
				}
				frame = append(frame, bytes.Clone(buf[:n]))
			}
			f, ok, err := jd.Push(buf[:n])
			if errors.Is(err, capture.ErrMediaLost) {
				call.framesLost.Store(jd.Stats().LostFrames)
			}
			if !ok {
				continue
			}
			if onMedia != nil && len(frame) > 0 {
				onMedia(call.Peer, capture.Burst{Kind: capture.KindVideo, Keyframe: true, CaptureTime: time.Now(), Packets: frame})
				frame = frame[:0]
			}
			call.framesRecv.Add(1)
			if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
				call.caller.cfg.Log.Warn("received frame does not decode", "err", err)
				continue
			}
			call.framesDecoded.Add(1)
			now := call.since()
			call.firstFrame.CompareAndSwap(0, now)
			call.lastFrame.Store(now)
		case strings.ToLower(webrtc.MimeTypePCMU):
			if _, ok, _ := ad.Push(buf[:n]); ok {
				call.audioRecv.Add(1)
				if onMedia != nil {
					onMedia(call.Peer, capture.Burst{Kind: capture.KindAudio, Keyframe: true, CaptureTime: time.Now(), Packets: [][]byte{buf[:n]}})
				}
			}
			call.audioLost.Store(ad.Stats().LostPackets)
		}
	}
}

// hangUp ends the call (once); tell says whether to send the peer a bye.
func (call *Call) hangUp(reason error, tell bool) {
	call.once.Do(func() {
		call.cancel()
		call.sampling.Wait()
		call.samplePairBytes()
		if tell {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = call.caller.cfg.Client.SendSignal(ctx, call.Peer.ID, call.callID(), KindBye, "")
			cancel()
		}
		call.mu.Lock()
		pc, m := call.pc, call.media
		call.mu.Unlock()
		if pc != nil {
			pc.Close()
		}
		if m != nil {
			m.Close()
		}
		call.setState(PhaseEnded, PathNone, reason)
		c := call.caller
		c.mu.Lock()
		if c.cur == call {
			c.cur = nil
		}
		c.mu.Unlock()
		close(call.done)
	})
}

// Summary is the outcome of a call, as `callbox call --json` prints it.
type Summary struct {
	Peer            string  `json:"peer"`
	Path            Path    `json:"path"`
	LocalCandidate  string  `json:"local_candidate"`
	RemoteCandidate string  `json:"remote_candidate"`
	ConnectMS       float64 `json:"connect_ms"`     // ICE connected, since the call started on this box
	FirstMediaMS    float64 `json:"first_media_ms"` // first media packet received
	FirstFrameMS    float64 `json:"first_frame_ms"` // first video frame received and decoded
	LastFrameMS     float64 `json:"last_frame_ms"`  // last video frame decoded (media resumed after a restart?)
	FramesSent      uint64  `json:"frames_sent"`
	FramesReceived  uint64  `json:"frames_received"`
	FramesDecoded   uint64  `json:"frames_decoded"`
	FramesLost      uint64  `json:"frames_lost"`
	AudioSent       uint64  `json:"audio_sent"`
	AudioReceived   uint64  `json:"audio_received"` // 20 ms PCMU packets
	AudioLost       uint64  `json:"audio_lost"`
	BytesViaRelay   uint64  `json:"bytes_via_relay"` // both directions, on relayed candidate pairs
	MaxRTPPacket    int     `json:"max_rtp_packet"`  // largest RTP packet sent
	Restarts        int     `json:"ice_restarts"`
	RecoveryMS      float64 `json:"recovery_ms"` // last loss of the path (as ICE saw it) to connected again
	DurationMS      float64 `json:"duration_ms"`
	Error           string  `json:"error,omitempty"`
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// Summary reports the call so far (or its final figures once Done).
func (call *Call) Summary() Summary {
	call.samplePairBytes()
	st := call.State()
	path := st.Path
	if path == PathNone {
		path = call.lastPath()
	}
	s := Summary{
		Peer:           call.Peer.ID,
		Path:           path,
		ConnectMS:      ms(call.connectAt.Load()),
		FirstMediaMS:   ms(call.firstMedia.Load()),
		FirstFrameMS:   ms(call.firstFrame.Load()),
		LastFrameMS:    ms(call.lastFrame.Load()),
		FramesSent:     call.framesSent.Load(),
		FramesReceived: call.framesRecv.Load(),
		FramesDecoded:  call.framesDecoded.Load(),
		FramesLost:     call.framesLost.Load(),
		AudioSent:      call.audioSent.Load(),
		AudioReceived:  call.audioRecv.Load(),
		AudioLost:      call.audioLost.Load(),
		BytesViaRelay:  call.relayBytes.Load() + call.pairBytes.Load(),
		MaxRTPPacket:   int(call.maxPacket.Load()),
		Restarts:       int(call.restarts.Load()),
		RecoveryMS:     ms(call.recovery.Load()),
		DurationMS:     ms(call.since()),
	}
	s.LocalCandidate, _ = call.localCand.Load().(string)
	s.RemoteCandidate, _ = call.remoteCand.Load().(string)
	if st.Err != nil {
		s.Error = st.Err.Error()
	}
	return s
}

// lastPath is the path of the last selected pair (after the call ended and
// the connection is gone).
func (call *Call) lastPath() Path {
	p, _ := call.lastPair.Load().(*webrtc.ICECandidatePair)
	if p == nil {
		return PathNone
	}
	return pathOf(p.Local, p.Remote)
}
