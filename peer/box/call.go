package box

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/pion/webrtc/v4"
)

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
	PhaseRinging      Phase = "ringing"      // an incoming call waits for Caller.Answer (no media yet)
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

// Call is one call with one paired box.
type Call struct {
	caller  *Caller
	Peer    proto.PeerInfo
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
	video     *callTrack
	audio     *callTrack
	media     *Media
	state     State
	restartAt time.Time

	// ringing: an incoming call not answered yet; held is the peer's
	// latest offer or ring, handled once the call is answered. extend
	// resets the setup timer (answered; the peer rings).
	ringing bool
	held    *Signal
	extend  chan time.Duration

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
	plisSent                              atomic.Uint64
	framesUndecodable                     atomic.Uint64
	videoBytes                            atomic.Uint64 // RTP bytes of video sent
	audioFEC                              atomic.Uint64 // lost Opus packets rebuilt from the next one's FEC
	bwe                                   atomic.Value  // cc.BandwidthEstimator of the current PeerConnection
	vstats                                videoStats
	lossPercent                           atomic.Int32 // audio loss the other box reports
	opusLossSet                           atomic.Int32 // what Opus's encoder was last told
	recvVideo, recvAudio                  atomic.Value // string: the codecs the other box sends
	latMu                                 sync.Mutex
	latency                               []latencySample // capture (abs-capture-time) to the frame's last packet, per frame
	relayBytes                            atomic.Uint64   // closed relayed pairs
	pairBytes                             atomic.Uint64   // current pair, if relayed
	localCand, remoteCand                 atomic.Value    // string
	lastPair                              atomic.Value    // *webrtc.ICECandidatePair
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
	if err := call.signal(proto.KindRing, ""); err != nil {
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
	if !call.hasPC() {
		// Short-lived TURN credentials: fresh ones before the
		// PeerConnection gathers (outside the lock: a hub round trip).
		call.caller.cfg.Client.RefreshICE(call.ctx)
	}
	call.mu.Lock()
	defer call.mu.Unlock()
	if call.pc != nil {
		return call.pc, nil
	}
	cfg := call.caller.cfg
	// The congestion control interceptor hands its estimator over while
	// NewPeerConnection builds the interceptors: bweMu pairs them up.
	call.caller.bweMu.Lock()
	call.caller.newBWE = nil
	pc, err := call.caller.api.NewPeerConnection(webrtc.Configuration{ICEServers: webrtcServers(cfg.Client.ICEServers())})
	if err == nil && call.caller.newBWE != nil {
		call.bwe.Store(call.caller.newBWE)
	}
	call.caller.bweMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("peer: new peer connection: %w", err)
	}
	// The tracks outlive a PeerConnection (glare replaces it): the media
	// goroutines keep writing to the same tracks.
	if call.video == nil {
		call.video = newCallTrack(webrtc.RTPCodecTypeVideo, "video", webrtc.MimeTypeH264, mimeJPEG)
		call.audio = newCallTrack(webrtc.RTPCodecTypeAudio, "audio", webrtc.MimeTypeOpus, webrtc.MimeTypePCMU)
	}
	video, audio := call.video, call.audio
	for _, t := range []*callTrack{video, audio} {
		// sendrecv transceivers: the answerer's own tracks then ride on the
		// offerer's m-lines.
		s, err := pc.AddTrack(t)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("peer: add track: %w", err)
		}
		go call.readRTCP(s, t.Kind())
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
		m, err := cfg.Media(maxMediaPacket(cfg.MaxDatagram))
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
	existed := call.hasPC()
	pc, err := call.ensurePC()
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if restart && existed {
		call.freshServers(pc)
	}
	if pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// An earlier offer went unanswered: it may have been lost with the
		// peer's old hub connection. pion cannot roll a local offer back,
		// so the pending one (gathered after the path was lost, so with the
		// current addresses) is sent again.
		if ld := pc.LocalDescription(); ld != nil {
			if err := call.signal(proto.KindOffer, ld.SDP); err != nil {
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
	if err := call.signal(proto.KindOffer, sdp); err != nil {
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
	existed := call.hasPC()
	pc, err := call.ensurePC()
	if err != nil {
		call.hangUp(err, true)
		return
	}
	if existed {
		call.freshServers(pc) // an offer on a live call is an ICE restart
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
	if err := call.signal(proto.KindAnswer, sdp); err != nil {
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

// hangUp ends the call (once); tell says whether to send the peer a bye.
func (call *Call) hangUp(reason error, tell bool) {
	call.once.Do(func() {
		call.cancel()
		call.sampling.Wait()
		call.samplePairBytes()
		if tell {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = call.caller.cfg.Client.SendSignal(ctx, call.Peer.ID, call.callID(), proto.KindBye, "")
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
		// The Caller forgets the call before anyone hears that it ended: a
		// new Call made on hearing "ended" must not get this one back.
		c := call.caller
		c.mu.Lock()
		if c.cur == call {
			c.cur = nil
		}
		c.mu.Unlock()
		call.setState(PhaseEnded, PathNone, reason)
		close(call.done)
	})
}

func webrtcServers(in []proto.ICEServer) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range in {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// freshServers gives pc the hub's current ICE servers before an ICE
// restart gathers again: TURN credentials last an hour, and a relayed call
// that outlives them needs new ones for its next allocation.
func (call *Call) freshServers(pc *webrtc.PeerConnection) {
	client := call.caller.cfg.Client
	client.RefreshICE(call.ctx)
	c := pc.GetConfiguration()
	c.ICEServers = webrtcServers(client.ICEServers())
	if err := pc.SetConfiguration(c); err != nil {
		call.caller.cfg.Log.Warn("ICE servers not updated for the restart", "err", err)
	}
}
