package firmware

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// peerPart is the appliance's calls to other boxes (package peer): the
// registration with the hub (so the box can be called), the Caller, the
// board's call and hang-up buttons, and /api/call. The box's identity and
// the boxes it has paired with live in the board's data directory, as
// `callbox call --data DIR` keeps them, so pairing with that command makes
// the appliance's peers.
//
// It starts after the media part (a call reads the camera and microphone
// through the media part's tap) and stops before it.
type peerPart struct {
	// Set by wire.
	cfg      config.Call
	name     string       // this box's name, shown to paired boxes
	relayCfg relay.Config // the call's relay: the box's per-client policy
	log      *slog.Logger
	mux      *http.ServeMux
	board    peerBoard
	media    peerMedia
	net      box.NetMonitor
	// speaker rings and plays the call's audio (run_speaker.go); nil:
	// none.
	speaker peerSpeaker
	// phones answers phones away from home (the relay's WebRTC
	// transport, run_remote.go).
	phones remoteAnswerer
	// talk plays remote phones' push-to-talk (run_talkback.go).
	talk *talkBack
	// uplink is the relay's side of S7 for remote phones; fanout decides
	// (run_fanout.go), nil without a hub.
	uplink remoteUplink
	fanout *remoteFanout
	// phoneHashes lists the paired phones' token IDs (the board's).
	phoneHashes func() []string
	// remoteSessions are the remote phones' sessions by the hub's request
	// ID (run_remote.go).
	remoteMu       sync.Mutex
	remoteSessions map[string]remoteSession

	hubURL   string
	peerName string
	callFPS  int
	// loopbackOnly keeps calls on loopback addresses (tests).
	loopbackOnly bool

	// remote is a relay of its own for the other box's media during a
	// call, at /ws/call/video and /ws/call/audio (the box's own stays on
	// /ws/video and /ws/audio: the page plays one stream per socket).
	remote *relay.Relay
	// callWHEP serves the call's relay to the phones over WebRTC at
	// /whep/call (docs/webrtc.md): the other box's H.264 and audio
	// forwarded as they arrive, never decoded, under the same per-client
	// policy as /whep.
	callWHEP *rwebrtc.Server
	// fallback makes JPEG and PCMU of the call's H.264 and Opus for the
	// phones on the WebSocket fallback (call_fallback.go).
	fallback *callFallback

	// dir holds the identity and peers.json.
	dir string

	// resetMu serialises factory resets; regCancel and regDone stop and
	// await the registration goroutine (a reset replaces it).
	resetMu   sync.Mutex
	ctx       context.Context
	regCancel context.CancelFunc
	regDone   chan struct{}

	mu     sync.Mutex
	missed []missedCall // the latest unanswered calls, newest last
	client *box.Client  // nil until registered with the hub
	caller *box.Caller
	st     box.State // the last state the caller reported
	broken error     // why calls are off although a hub is configured

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	// errNoHub: the appliance runs without --hub; calls are off.
	errNoHub = errors.New("no hub configured (--hub)")
	// errHubDown: the hub has not welcomed the box yet.
	errHubDown = errors.New("not registered with the hub yet")
	// errCallsOff: a hub is configured but calls cannot work (no identity).
	errCallsOff = errors.New("calls off")
	// errNoPeer: nothing says which box to call.
	errNoPeer = errors.New("no box to call")
)

// peerBoard is what calls need of the board: the data directory (the
// box's identity), the pairing gate (the call API and the call's relay),
// the call and hang-up buttons, and the LED's call state.
type peerBoard interface {
	authorizer
	authorizeHash(hash string) error
	dataDir() string
	setHooks(board.Hooks)
	onReset(func())
	onRevoke(func(hash string) int)
	setCall(board.Call)
	setBoxPairing(bool)
	callState() board.Call
	muted() bool
}

// peerSpeaker is what calls need of the box's speaker: the call's state
// (the ring tone) and its received audio. Neither may block.
type peerSpeaker interface {
	callState(board.Call)
	callAudio(capture.Burst)
}

// peerMedia is what calls need of the media pipeline: copies of the
// camera's frames and the microphone's chunks (none while muted).
type peerMedia interface {
	SubscribeVideo(codec capture.Codec, minGap time.Duration) capture.VideoSource
	SubscribeAudio() capture.AudioSource
}

func (p *peerPart) start(ctx context.Context) error {
	p.hubURL, p.peerName, p.callFPS = p.cfg.Hub, p.cfg.Peer, p.cfg.FPS
	p.board.setHooks(board.Hooks{
		Call:   func() error { return p.call("") },
		HangUp: p.hangUp,
		Answer: p.answer,
		ConfirmBoxPairing: func() error {
			client, _ := p.current()
			if client == nil {
				return errHubDown
			}
			// Hooks return at once: the hub round trip runs aside.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := client.ConfirmPairing(ctx); err != nil {
					p.log.Warn("pairing confirmation by the buttons", "err", err)
					return
				}
				p.log.Info("pairing confirmed on this box by the buttons")
			}()
			return nil
		},
	})
	p.routes(p.mux)
	dir := p.board.dataDir()
	if dir == "" {
		dir = defaultDataDir()
	}
	p.dir = dir
	// A factory reset forgets the boxes this one paired with, too.
	p.board.onReset(p.factoryReset)
	// Unpairing one phone ends its sessions on the call's relay, too.
	p.board.onRevoke(p.phoneRevoked)
	if p.hubURL == "" {
		p.log.Info("calls between boxes are off: no --hub")
		return nil
	}
	// The identity is made now: a data dir that cannot hold it turns calls
	// off (and says why on every try) but never stops the box, whose
	// phones do not need it.
	if _, err := proto.LoadOrCreateIdentity(dir); err != nil {
		p.log.Error("calls off: no identity", "err", err)
		p.setBroken(err)
		return nil
	}
	// Signalling goes over TLS (wss://) except to a hub on this machine.
	if err := box.CheckHubURL(p.hubURL, false); err != nil {
		p.log.Error("calls off", "err", err)
		p.setBroken(err)
		return nil
	}
	// The call's relay serves the same phones as the box's own: the same
	// per-client policy (docs/config.md, "The call's relay").
	rcfg := p.relayCfg
	rcfg.Authorize = p.board.Authorize // paired phones only, as for the box's own media
	rcfg.Owner = pairing.Hash
	p.remote = relay.New(rcfg, p.log.With("relay", "call"))
	p.fallback = newCallFallback(p.remote, box.MaxRTPPacket(box.DefaultMaxDatagram), p.requestCallKeyframe, p.log)
	p.mux.Handle("/ws/call/video", p.remote.WebSocketHandler(capture.KindVideo))
	p.mux.Handle("/ws/call/audio", p.remote.WebSocketHandler(capture.KindAudio))
	// A phone that joins a call under way needs an IDR from the other
	// box: the call's relay asks for one as the box's own relay asks its
	// encoder.
	p.remote.OnKeyframeRequest(p.requestCallKeyframe)
	cw, err := startCallWHEP(p.mux, p.remote, p.board.Authorize, p.log)
	if err != nil {
		p.remote.Close()
		return err
	}
	p.callWHEP = cw
	ctx, p.cancel = context.WithCancel(ctx)
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	p.startRegister()
	if p.uplink != nil && !p.cfg.PhonesViaHub {
		p.log.Info("S7 for remote phones off (call.phones_via_hub = false): a copy per phone from the box")
	}
	if p.uplink != nil && p.cfg.PhonesViaHub {
		f := newRemoteFanout(p.uplink, p.phoneHashes, p.hubURL, p.dir, p.cfg.UplinkKbps, p.log.With("s7", "remote phones"))
		p.mu.Lock()
		p.fanout = f
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			f.run(ctx)
		}()
	}
	return nil
}

// remoteState is /api/state's "remote" (nil without a hub).
func (p *peerPart) remoteState() *remoteAPIState {
	p.mu.Lock()
	f := p.fanout
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.apiState()
}

// startRegister registers with the hub in the background (register).
func (p *peerPart) startRegister() {
	ctx, cancel := context.WithCancel(p.ctx)
	done := make(chan struct{})
	p.mu.Lock()
	p.regCancel, p.regDone = cancel, done
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		p.register(ctx, p.dir)
	}()
}

// factoryReset makes the box a stranger to every box it paired with, so
// that the next owner of a resold box is nobody's peer: the phones
// watching the other box's media are cut off, the call is hung up (the
// other box is told), peers.json and the identity key are deleted, and the
// box registers with the hub under a new identity. The hub sees the old
// identity leave; a paired box calling it reaches nobody. The slow part
// runs in the background: the board's hooks must return quickly.
func (p *peerPart) factoryReset() {
	if p.remote != nil {
		n := p.remote.DisconnectAll("unpaired")
		p.log.Info("factory reset disconnected the call's viewers", "count", n)
	}
	p.mu.Lock()
	stopping := p.ctx != nil && p.ctx.Err() != nil
	if !stopping {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if stopping {
		return
	}
	go func() {
		defer p.wg.Done()
		p.resetMu.Lock()
		defer p.resetMu.Unlock()
		p.mu.Lock()
		cancel, done := p.regCancel, p.regDone
		client, caller := p.client, p.caller
		p.client, p.caller = nil, nil
		ctx := p.ctx
		p.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
		if caller != nil {
			caller.Close() // hangs up, telling the other box
		}
		if client != nil {
			// The hub deletes the old identity and its pairs and tells the
			// paired boxes; a hub out of reach only sees the identity
			// leave (the paired boxes then keep a peer nobody holds).
			fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := client.Forget(fctx); err != nil {
				p.log.Warn("factory reset: the hub was not told", "err", err)
			}
			fcancel()
			client.Close()
		}
		for _, f := range []string{"peers.json", proto.KeyFileName} {
			if err := os.Remove(filepath.Join(p.dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.log.Error("factory reset: cannot delete", "file", f, "err", err)
				p.setBroken(fmt.Errorf("factory reset: %w", err))
			}
		}
		p.log.Info("factory reset: paired boxes forgotten, identity replaced")
		if p.hubURL == "" || ctx == nil || ctx.Err() != nil {
			return
		}
		if _, err := proto.LoadOrCreateIdentity(p.dir); err != nil {
			p.log.Error("calls off: no identity", "err", err)
			p.setBroken(err)
			return
		}
		p.startRegister()
	}()
}

// register dials the hub until it welcomes the box (the hub may be
// unreachable at boot; once registered, the client reconnects by itself)
// and then starts the Caller, which also takes calls from paired boxes.
func (p *peerPart) register(ctx context.Context, dir string) {
	name := p.name
	backoff := time.Second
	for {
		client, err := dialHub(ctx, p.hubURL, dir, name, false, p.log)
		if err == nil {
			caller, err := box.NewCaller(box.CallerConfig{
				Client:     client,
				Media:      p.callMedia,
				OnState:    p.onState,
				NetMonitor: p.net,
				OnMedia:    p.onCallMedia,
				OnFrame:    p.fallback.frame,
				OnAudio:    p.onCallAudio,
				// No one at the box has consented to a call yet: it rings
				// (LED, page) and waits for button B, the page or
				// /api/call/answer, unless call.auto_answer.
				RingFor:      p.ringFor(),
				LoopbackOnly: p.loopbackOnly,
				Log:          p.log,
			})
			if err != nil {
				client.Close()
				p.log.Error("calls off", "err", err)
				p.setBroken(err)
				return
			}
			client.OnPhoneOffer(p.answerPhone)
			client.OnPhoneBye(p.phoneBye)
			p.mu.Lock()
			p.client, p.caller = client, caller
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.followPairing(ctx, client)
			}()
			p.log.Info("registered with the hub", "hub", p.hubURL, "id", client.ID(), "peers", len(client.Peers()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("hub unreachable; calls wait for it", "hub", p.hubURL, "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// followPairing shows on the board whether a pairing with another box
// waits for this owner's confirmation, as long as client is the box's.
func (p *peerPart) followPairing(ctx context.Context, client *box.Client) {
	defer p.board.setBoxPairing(false)
	for {
		ch := client.PairingChanged()
		p.board.setBoxPairing(client.Pairing().Stage == box.PairCompare)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(time.Second):
			// Pairing's stage also turns failed when its code expires,
			// with no change to wake this loop.
		}
	}
}

// dialHub opens the box's identity in dataDir and registers with the hub
// (`callbox call` and the appliance).
func dialHub(ctx context.Context, hubURL, dataDir, name string, insecure bool, log *slog.Logger) (*box.Client, error) {
	id, err := proto.LoadOrCreateIdentity(dataDir)
	if err != nil {
		return nil, err
	}
	return box.Dial(ctx, box.ClientConfig{HubURL: hubURL, Identity: id, Name: name, DataDir: dataDir, InsecureHub: insecure, Log: log})
}

func (p *peerPart) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	client, caller := p.client, p.caller
	p.client, p.caller = nil, nil
	p.mu.Unlock()
	if caller != nil {
		caller.Close() // hangs up, telling the other box
	}
	if client != nil {
		client.Close()
	}
	if p.callWHEP != nil {
		p.callWHEP.Close()
	}
	if p.remote != nil {
		p.remote.Close()
	}
	if p.fallback != nil {
		p.fallback.close()
	}
}

// onCallMedia republishes the other box's media, as the call received it
// (RTP packets of whole frames and audio chunks), on the call's relay:
// /ws/call/* and /whep/call read it from there.
func (p *peerPart) onCallMedia(_ proto.PeerInfo, b capture.Burst) {
	p.remote.Publish(b)
	if p.speaker != nil {
		p.speaker.callAudio(b)
	}
}

// onCallAudio hears the other box's sound as the call decoded it (Opus
// with its in-band FEC): PCMU of it for the WebSocket fallback. The
// speaker decodes the bursts itself (onCallMedia).
func (p *peerPart) onCallAudio(from proto.PeerInfo, c capture.AudioChunk) {
	p.fallback.audio(from, c)
}

// requestCallKeyframe asks the other box for an IDR (RTCP PLI on the
// call); the call's relay rate-limits the requests.
func (p *peerPart) requestCallKeyframe() {
	if _, caller := p.current(); caller != nil {
		caller.RequestKeyframe()
	}
}

func (p *peerPart) setBroken(err error) {
	p.mu.Lock()
	p.broken = err
	p.mu.Unlock()
}

func (p *peerPart) current() (*box.Client, *box.Caller) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client, p.caller
}

// call calls a paired box: want (a name or ID), else --peer, else the only
// paired box. It returns as soon as the call is signalled; the board and
// /api/state follow it through onState.
func (p *peerPart) call(want string) error {
	if p.hubURL == "" {
		return errNoHub
	}
	client, caller := p.current()
	if caller == nil {
		p.mu.Lock()
		broken := p.broken
		p.mu.Unlock()
		if broken != nil {
			return fmt.Errorf("%w: %w", errCallsOff, broken)
		}
		return errHubDown
	}
	if want == "" {
		want = p.peerName
	}
	target, err := choosePeer(client.Peers(), want)
	if err != nil {
		return err
	}
	if cur := caller.Current(); cur != nil && cur.Peer.ID == target.ID && cur.State().Phase == box.PhaseRinging {
		return p.answer() // calling the box that rings here takes its call
	}
	if cur := caller.Current(); cur != nil && cur.Peer.ID != target.ID {
		return fmt.Errorf("%w: in a call with %s", errBusy, peerLabel(cur.Peer.Name, cur.Peer.ID))
	}
	if _, err := caller.Call(context.Background(), target.ID); err != nil {
		return err
	}
	p.log.Info("calling", "peer", peerLabel(target.Name, target.ID), "online", target.Online)
	return nil
}

// errBusy: a call with another box is under way.
var errBusy = errors.New("busy")

// choosePeer picks the box to call among the paired ones.
func choosePeer(peers []proto.PeerInfo, want string) (proto.PeerInfo, error) {
	if want != "" {
		var found []proto.PeerInfo
		for _, pi := range peers {
			if pi.ID == want {
				return pi, nil
			}
			if pi.Name == want {
				found = append(found, pi)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			return proto.PeerInfo{}, fmt.Errorf("%w: %q", proto.ErrUnknownPeer, want)
		}
		return proto.PeerInfo{}, fmt.Errorf("%w: %q names %d boxes; use the ID", proto.ErrUnknownPeer, want, len(found))
	}
	switch len(peers) {
	case 1:
		return peers[0], nil
	case 0:
		return proto.PeerInfo{}, fmt.Errorf("%w: no paired box (pair with `callbox call --data DIR --pair`)", errNoPeer)
	}
	return proto.PeerInfo{}, fmt.Errorf("%w: %d paired boxes; choose one with --peer or {\"peer\":...}", errNoPeer, len(peers))
}

// ringFor is how long an incoming call rings (0: call.auto_answer).
func (p *peerPart) ringFor() time.Duration {
	if p.cfg.AutoAnswer {
		return 0
	}
	if p.cfg.RingTimeout > 0 {
		return p.cfg.RingTimeout
	}
	return 30 * time.Second
}

// missedCall is an incoming call nobody answered, for the page.
type missedCall struct {
	Peer string    `json:"peer"`
	At   time.Time `json:"at"`
}

// maxMissed bounds the missed calls kept (in memory: a restart forgets them).
const maxMissed = 10

// missedCalls are the latest missed calls, newest last.
func (p *peerPart) missedCalls() []missedCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]missedCall(nil), p.missed...)
}

// clearMissed forgets the missed calls (the page's "dismiss").
func (p *peerPart) clearMissed() {
	p.mu.Lock()
	p.missed = nil
	p.mu.Unlock()
}

// answer takes the incoming call that rings.
func (p *peerPart) answer() error {
	_, caller := p.current()
	if caller == nil {
		return box.ErrNotRinging
	}
	if err := caller.Answer(); err != nil {
		return err
	}
	if cur := caller.Current(); cur != nil {
		p.log.Info("call answered", "peer", peerLabel(cur.Peer.Name, cur.Peer.ID))
	}
	return nil
}

// hangUp ends the call, or cancels one being set up.
func (p *peerPart) hangUp() error {
	if _, caller := p.current(); caller != nil {
		caller.HangUp()
	}
	return nil
}

// onState follows the call on the board: calling (also while a lost path
// is re-established), in a call direct (host or through the NATs) or
// relayed, idle. It is called from the call's goroutines, sometimes with
// the Caller's lock held: it must not call back into the Caller.
func (p *peerPart) onState(s box.State) {
	p.mu.Lock()
	p.st = s
	if s.Phase == box.PhaseEnded && errors.Is(s.Err, box.ErrMissed) {
		p.missed = append(p.missed, missedCall{Peer: peerLabel(s.Name, s.Peer), At: time.Now().UTC()})
		if len(p.missed) > maxMissed {
			p.missed = p.missed[len(p.missed)-maxMissed:]
		}
	}
	p.mu.Unlock()
	if s.Phase == box.PhaseEnded && s.Err != nil {
		p.log.Info("call ended", "peer", peerLabel(s.Name, s.Peer), "why", s.Err)
	}
	p.board.setCall(boardCall(s))
	if p.speaker != nil {
		p.speaker.callState(boardCall(s))
	}
}

// boardCall maps a call's state to the board's.
func boardCall(s box.State) board.Call {
	switch s.Phase {
	case box.PhaseRinging:
		return board.CallRinging
	case box.PhaseCalling, box.PhaseReconnecting:
		return board.CallDialing
	case box.PhaseConnected:
		switch s.Path {
		case box.PathRelay:
			return board.CallRelayed
		case box.PathNone:
			// Connected, the selected pair not known yet (it follows at
			// once): not "direct" for a moment on a relayed call.
			return board.CallDialing
		}
		return board.CallDirect
	}
	return board.CallIdle
}

// state is the last reported call state (Phase "" or ended: no call).
func (p *peerPart) state() box.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// callsEnabled reports whether a hub is configured (for /api/state).
func (p *peerPart) callsEnabled() bool { return p.cfg.Hub != "" }

// peerLabel is the other box's name for /api/state ("" without a call).
func (p *peerPart) peerLabel() string {
	s := p.state()
	if s.Phase == "" || s.Phase == box.PhaseEnded {
		return ""
	}
	return peerLabel(s.Name, s.Peer)
}

func peerLabel(name, id string) string {
	if name != "" {
		return name
	}
	return id
}

// callMedia is the call's MediaFactory: the box's own camera, as the
// media part's tap has it (JPEG, or raw pictures when the box encodes
// H.264 itself: the call encodes its own H.264 from either, at the size
// and bitrate its path allows, or sends the JPEG to an older box), and
// the microphone (nothing while muted), packetized for the call's
// datagram limit.
func (p *peerPart) callMedia(maxPacket int) (*box.Media, error) {
	vp, err := rtpjpeg.NewPacketizer(maxPacket, rtpext.Random32(), capture.PayloadTypeJPEG)
	if err != nil {
		return nil, fmt.Errorf("call video packetizer: %w", err)
	}
	ap, err := pcmu.NewPacketizer(maxPacket, rtpext.Random32(), capture.PayloadTypePCMU)
	if err != nil {
		return nil, fmt.Errorf("call audio packetizer: %w", err)
	}
	var gap time.Duration
	if p.callFPS > 0 {
		gap = time.Second / time.Duration(p.callFPS)
	}
	v := p.media.SubscribeVideo(0, gap)
	au := p.media.SubscribeAudio() // nothing while muted
	return &box.Media{Video: v, VideoPacketizer: vp, Audio: au, AudioPacketizer: ap}, nil
}
