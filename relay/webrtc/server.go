package webrtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/relay"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"
)

// H264Fmtp is the one H.264 format the box answers: constrained baseline,
// level 3.1, packetization mode 1 (what every WebRTC browser decodes,
// in hardware on phones).
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// Config configures the WHEP endpoint.
type Config struct {
	// Authorize checks the bearer token of a request (the pairing token);
	// nil admits everyone (--open).
	Authorize func(token string) error
	// Owner names the phone a bearer token belongs to (relay.Config.Owner):
	// CloseOwner ends that phone's sessions. Nil: LAN sessions have none.
	Owner func(token string) string
	// Video and Audio are the relay policy's parameters for WebRTC
	// sessions; zero fields take DefaultVideo / DefaultAudio, then the
	// relay's own.
	Video, Audio relay.KindConfig
	// IPFilter limits the host candidates to the addresses it keeps; nil
	// keeps every address of the box.
	IPFilter func(net.IP) bool
	// Loopback offers 127.0.0.1 as a candidate too (tests on one machine).
	Loopback bool
	// UDPPortMin and UDPPortMax bound the ports of the host candidates
	// (both zero: any).
	UDPPortMin, UDPPortMax uint16
	// MaxPeers bounds concurrent WHEP sessions; more get 503.
	MaxPeers int
	// ConnectTimeout ends a session whose connection is not up this long
	// after its offer.
	ConnectTimeout time.Duration
	// OpusFirst answers Opus to a phone that offers it unless the relay
	// carries PCMU and no Opus right now; without it the answer has Opus
	// only while the relay carries Opus. The call's relay sets it: the
	// other box's audio may start after a phone joined (that box muted at
	// first), and a session answered PCMU then would stay silent when Opus
	// comes.
	OpusFirst bool
	// Path is where the server is mounted (default "/whep"): offers are
	// POSTed to Path, sessions live at Path/<id>. The call's relay is
	// served at "/whep/call" beside the box's own "/whep".
	Path string
	// NAT1To1IPs are public addresses announced instead of the host
	// candidates' (a hub on a cloud machine behind 1:1 NAT: --public-ip).
	NAT1To1IPs []string
	Log        *slog.Logger
}

// DefaultVideo is the video policy of a WebRTC session. Transport-wide
// feedback comes every 50-100 ms (Chrome; pion's receiver: 100 ms)
// instead of a Health Check every 8 packets, so the window of packets in
// flight must cover a feedback interval of the stream and a keyframe: 64
// packets are about 77 KB, 0.25 s of a 2.5 Mbit/s stream, and bound a slow
// client's delay like the TCP window does (0.6 s at 1 Mbit/s).
// MaxDelay is longer than TCP's for the same reason: a window waits for
// feedback for up to an interval.
var DefaultVideo = relay.KindConfig{
	HealthInterval: 16,
	IdleLimit:      32,
	Batch:          32,
	MaxUnits:       8,
	MaxBytes:       512 << 10,
	MaxDelay:       100 * time.Millisecond,
}

// DefaultAudio is the audio policy of a WebRTC session: 20 ms packets, so
// 10 in flight cover 200 ms of feedback delay.
var DefaultAudio = relay.KindConfig{
	HealthInterval: 4,
	IdleLimit:      12,
	Batch:          12,
	MaxUnits:       12,
	MaxBytes:       16 << 10,
	MaxDelay:       200 * time.Millisecond,
	Keep:           60 * time.Millisecond,
}

// Server is the WHEP endpoint (RFC 9725) of a relay: each session is a
// PeerConnection whose video and audio are sessions of the relay, under
// the same policy as TCP and WebSocket clients.
type Server struct {
	r   *relay.Relay
	cfg Config
	log *slog.Logger
	api *pion.API
	// apiOpus also answers opus/48000/2: the offers made while the box
	// publishes Opus beside PCMU (Relay.PublishingOpus) use it.
	apiOpus *pion.API
	hist    history

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool
	remote map[string]uint64 // connections by the remote candidate's type
}

func (s *Server) countRemote(typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remote == nil {
		s.remote = make(map[string]uint64)
	}
	s.remote[typ]++
}

// RemoteCandidates counts the connections so far by the type of the
// phone's candidate they use: host, or prflx (peer-reflexive: a phone that
// hid its host candidates).
func (s *Server) RemoteCandidates() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]uint64, len(s.remote))
	for k, v := range s.remote {
		m[k] = v
	}
	return m
}

// New makes the WHEP endpoint for r.
func New(r *relay.Relay, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = 64
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	cfg.Path = strings.TrimSuffix(cfg.Path, "/")
	if cfg.Path == "" {
		cfg.Path = "/whep"
	}
	cfg.Video = cfg.Video.WithDefaults(DefaultVideo)
	cfg.Audio = cfg.Audio.WithDefaults(DefaultAudio)
	m, err := mediaEngine(false, false)
	mo, err2 := mediaEngine(false, true)
	if err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	var se pion.SettingEngine
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	// No STUN on the LAN, and no mDNS: phones that hide their host
	// candidates behind .local names reach the box's host candidates
	// anyway and become peer-reflexive candidates.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(3*time.Second, 6*time.Second, time.Second)
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	if cfg.IPFilter != nil {
		se.SetIPFilter(cfg.IPFilter)
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, pion.ICECandidateTypeHost)
	}
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("webrtc: %w", err)
		}
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	lf.Writer = io.Discard
	se.LoggerFactory = lf
	return &Server{
		r:   r,
		cfg: cfg,
		log: cfg.Log,
		// An empty interceptor registry: pion's defaults would keep a NACK
		// history per client (the shared one serves NACKs here), copy
		// every packet for it and for statistics, and write sender reports
		// (sendReports does, from capture times).
		api:     pion.NewAPI(pion.WithMediaEngine(m), pion.WithSettingEngine(se), pion.WithInterceptorRegistry(&interceptor.Registry{})),
		apiOpus: pion.NewAPI(pion.WithMediaEngine(mo), pion.WithSettingEngine(se), pion.WithInterceptorRegistry(&interceptor.Registry{})),
		peers:   make(map[string]*peer),
	}, nil
}

// MediaEngine is the codecs and header extensions of the box (and, with
// receiver, of the WHEP client): H.264 42e01f packetization mode 1 with
// NACK, PLI, FIR and transport-cc feedback; PCMU; transport-wide sequence
// numbers and abs-capture-time.
func MediaEngine(receiver bool) (*pion.MediaEngine, error) {
	return mediaEngine(receiver, false)
}

// OpusCodec is how the box announces Opus (RFC 7587: always opus/48000/2
// in SDP; the box sends mono).
var OpusCodec = pion.RTPCodecParameters{
	RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: []pion.RTCPFeedback{{Type: pion.TypeRTCPFBTransportCC}}},
	PayloadType: capture.PayloadTypeOpus,
}

// mediaEngine is MediaEngine with Opus audio registered too (preferred).
func mediaEngine(receiver, opus bool) (*pion.MediaEngine, error) {
	m := &pion.MediaEngine{}
	if opus {
		if err := m.RegisterCodec(OpusCodec, pion.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	fb := []pion.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
		{Type: pion.TypeRTCPFBTransportCC}}
	if err := m.RegisterCodec(pion.RTPCodecParameters{
		RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: H264Fmtp, RTCPFeedback: fb},
		PayloadType:        capture.PayloadTypeH264,
	}, pion.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(pion.RTPCodecParameters{
		RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000, Channels: 1,
			RTCPFeedback: []pion.RTCPFeedback{{Type: pion.TypeRTCPFBTransportCC}}},
		PayloadType: capture.PayloadTypePCMU,
	}, pion.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for _, e := range []struct {
		uri  string
		kind pion.RTPCodecType
	}{
		// abs-capture-time first: in the client's offer it gets ID 1,
		// callbox's own ID, so relay/viewer's tracker reads it as is.
		{rtpext.AbsCaptureTimeURI, pion.RTPCodecTypeVideo},
		{rtpext.AbsCaptureTimeURI, pion.RTPCodecTypeAudio},
		{sdp.TransportCCURI, pion.RTPCodecTypeVideo},
		{sdp.TransportCCURI, pion.RTPCodecTypeAudio},
	} {
		if err := m.RegisterHeaderExtension(pion.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ServeHTTP serves POST Path and DELETE Path/{id} (Config.Path, /whep by
// default); mount it at both.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set(TimeHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
	path := strings.TrimSuffix(req.URL.Path, "/")
	i := strings.LastIndex(path, s.cfg.Path)
	if i < 0 {
		http.NotFound(w, req)
		return
	}
	rest := path[i+len(s.cfg.Path):]
	if rest != "" && rest[0] != '/' {
		http.NotFound(w, req) // "/whepx", or "/whep/callx" for the call's server
		return
	}
	id := strings.TrimPrefix(rest, "/")
	if id == "" {
		switch req.Method {
		case http.MethodPost:
			s.offer(w, req)
		case http.MethodOptions:
			w.Header().Set("Accept-Post", "application/sdp")
			// The page asks before it offers: no WebRTC without H.264.
			codec := s.r.VideoCodec()
			if s.r.Publishing(capture.CodecH264) {
				codec = capture.CodecH264
			}
			w.Header().Set(VideoHeader, codec.String())
			w.Header().Set(VideoLiveHeader, s.liveVideo())
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
		return
	}
	if _, ok := s.authorized(w, req); !ok {
		return
	}
	s.mu.Lock()
	p := s.peers[id]
	s.mu.Unlock()
	if p == nil {
		http.NotFound(w, req)
		return
	}
	switch req.Method {
	case http.MethodDelete:
		p.close("DELETE")
		w.WriteHeader(http.StatusOK)
	default:
		// No trickle ICE and no ICE restart (RFC 9725 4.3: 405).
		w.Header().Set("Allow", "DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Server) authorized(w http.ResponseWriter, req *http.Request) (string, bool) {
	if s.cfg.Authorize == nil {
		return "", true
	}
	// No header is the empty token: the gate decides (an open box admits
	// it, as it does a WebSocket client without a token).
	tok := ""
	if h := req.Header.Get("Authorization"); h != "" {
		var ok bool
		if tok, ok = strings.CutPrefix(h, "Bearer "); !ok {
			tok = "\x00not a bearer token"
		}
	}
	tok = strings.TrimSpace(tok)
	err := s.cfg.Authorize(tok)
	if err == nil {
		return tok, true
	}
	s.log.Info("webrtc: refused WHEP client", "remote", req.RemoteAddr, "err", err)
	w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
	http.Error(w, "unpaired", http.StatusUnauthorized)
	return "", false
}

// VideoHeader on an OPTIONS answer names the box's video codec (h264,
// jpeg): a page falls back to its WebSocket path at once when it is not
// H.264.
const VideoHeader = "Callbox-Video"

// VideoLiveHeader on an OPTIONS answer says which video the relay carries
// now (published in the last two seconds): h264, jpeg, or none. The call's
// relay carries nothing until the other box's first frame arrives, so a
// page waits for h264 (WebRTC) or jpeg (its WebSocket path) before it
// chooses.
const VideoLiveHeader = "Callbox-Video-Live"

// liveVideo is VideoLiveHeader's value: H.264 first (the box may publish
// JPEG beside it).
func (s *Server) liveVideo() string {
	switch {
	case s.r.Publishing(capture.CodecH264):
		return capture.CodecH264.String()
	case s.r.Publishing(capture.CodecJPEG):
		return capture.CodecJPEG.String()
	}
	return "none"
}

// maxOffer bounds an SDP offer (a browser's is 4-8 KB).
const maxOffer = 64 << 10

func (s *Server) offer(w http.ResponseWriter, req *http.Request) {
	ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || ct != "application/sdp" {
		http.Error(w, "want Content-Type: application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	tok, ok := s.authorized(w, req)
	if !ok {
		return
	}
	owner := ""
	if s.cfg.Owner != nil && tok != "" {
		owner = s.cfg.Owner(tok)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxOffer+1))
	if err != nil {
		http.Error(w, "reading the offer: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxOffer {
		http.Error(w, "offer too large", http.StatusRequestEntityTooLarge)
		return
	}
	if c := s.r.VideoCodec(); !s.r.Publishing(capture.CodecH264) {
		// A browser cannot play the box's JPEG over WebRTC: the page
		// falls back to its WebSocket path.
		w.Header().Set("Retry-After", "10")
		http.Error(w, "the box's video is "+c.String()+", not H.264: use the WebSocket path", http.StatusServiceUnavailable)
		return
	}
	p, answer, err := s.newPeer(req.Context(), req.RemoteAddr, string(body), nil, RemoteOptions{Owner: owner})
	if err != nil {
		var bad *badOfferError
		switch {
		case errors.As(err, &bad):
			http.Error(w, bad.Error(), http.StatusBadRequest)
		case errors.Is(err, errFull), errors.Is(err, relay.ErrClosed):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			s.log.Warn("webrtc: WHEP offer failed", "remote", req.RemoteAddr, "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	loc := strings.TrimSuffix(req.URL.Path, "/") + "/" + p.id
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

type badOfferError struct{ err error }

func (e *badOfferError) Error() string { return "bad offer: " + e.err.Error() }

var errFull = errors.New("webrtc: too many sessions")

// ErrNotH264 refuses an offer while the box's video is not H.264 (a
// browser cannot play its JPEG over WebRTC).
var ErrNotH264 = errors.New("webrtc: the box's video is not H.264")

// IsBadOffer reports whether err (from AnswerRemote) blames the offer.
func IsBadOffer(err error) bool {
	var bad *badOfferError
	return errors.As(err, &bad)
}

// AnswerRemote answers an offer that did not come over this box's HTTP
// (a phone away from home, forwarded by the hub: docs/peer.md): the same
// session under the same policy as a WHEP client on the LAN, but its ICE
// agent also gathers server-reflexive and relayed candidates from ice
// (the hub's STUN and TURN). It returns the session's ID and the answer
// with every candidate (no trickle). remote names the client in logs.
func (s *Server) AnswerRemote(ctx context.Context, remote, offer string, ice []pion.ICEServer) (id, answer string, err error) {
	return s.AnswerRemoteWith(ctx, remote, offer, ice, RemoteOptions{})
}

// AnswerRemoteWith is AnswerRemote with the session's options.
func (s *Server) AnswerRemoteWith(ctx context.Context, remote, offer string, ice []pion.ICEServer, opt RemoteOptions) (id, answer string, err error) {
	if len(offer) > maxOffer {
		return "", "", &badOfferError{errors.New("offer too large")}
	}
	if !s.r.Publishing(capture.CodecH264) {
		return "", "", ErrNotH264
	}
	p, answer, err := s.newPeer(ctx, remote, offer, ice, opt)
	if err != nil {
		return "", "", err
	}
	return p.id, answer, nil
}

// CloseSession ends session id (a remote phone's DELETE); false if there is none.
func (s *Server) CloseSession(id string) bool {
	s.mu.Lock()
	p := s.peers[id]
	s.mu.Unlock()
	if p == nil {
		return false
	}
	p.close("DELETE")
	return true
}

func (s *Server) newPeer(ctx context.Context, remote, offer string, ice []pion.ICEServer, opt RemoteOptions) (*peer, string, error) {
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	p := &peer{srv: s, id: hex.EncodeToString(idb[:]), remote: remote, start: time.Now(),
		done: make(chan struct{}), twAcked: 0xffff, away: ice != nil}
	p.video = newSender(p, capture.KindVideo)
	p.audio = newSender(p, capture.KindAudio)
	p.owner = opt.Owner

	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, "", &badOfferError{err}
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, "", relay.ErrClosed
	case len(s.peers) >= s.cfg.MaxPeers:
		s.mu.Unlock()
		return nil, "", errFull
	}
	s.peers[p.id] = p
	s.mu.Unlock()
	fail := func(err error) (*peer, string, error) {
		p.close("offer failed")
		return nil, "", err
	}

	api := s.api
	if s.r.PublishingOpus() || (s.cfg.OpusFirst && !s.r.PublishingPCMU()) {
		api = s.apiOpus
	}
	pc, err := api.NewPeerConnection(pion.Configuration{ICEServers: ice})
	if err != nil {
		s.forget(p)
		return nil, "", err
	}
	p.pc = pc
	hasVideo, hasAudio := false, false
	for _, m := range sd.MediaDescriptions {
		switch m.MediaName.Media {
		case "video":
			hasVideo = true
		case "audio":
			hasAudio = true
		}
	}
	if !hasVideo {
		return fail(&badOfferError{errors.New("no video section")})
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(&badOfferError{err})
	}
	type add struct {
		s  *sender
		on bool
	}
	for _, a := range []add{{p.video, hasVideo}, {p.audio, hasAudio}} {
		if !a.on {
			continue
		}
		rs, err := pc.AddTrack(a.s)
		if err != nil {
			return fail(&badOfferError{fmt.Errorf("%s: %w", a.s.kind, err)})
		}
		go p.readRTCP(a.s, rs)
	}
	// What the phone sends: its microphone, for talk-back when allowed.
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) { p.incoming(tr, opt.TalkBack) })
	pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		switch st {
		case pion.PeerConnectionStateConnected:
			go p.connected()
		case pion.PeerConnectionStateFailed, pion.PeerConnectionStateClosed:
			p.close("connection " + st.String())
		}
	})
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(&badOfferError{err})
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-gctx.Done():
		return fail(errors.New("webrtc: gathering candidates timed out"))
	}
	if !p.video.isBound() {
		return fail(&badOfferError{errors.New("the offer has no H.264 42e01f packetization-mode 1 the box can send")})
	}
	time.AfterFunc(s.cfg.ConnectTimeout, func() {
		if pc.ConnectionState() != pion.PeerConnectionStateConnected {
			p.close("not connected in time")
		}
	})
	s.log.Info("webrtc: WHEP session", "peer", p.id, "remote", p.remote, "audio", p.audio.isBound(), "opus", p.audio.isOpus())
	return p, pc.LocalDescription().SDP, nil
}

func (s *sender) isBound() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

func (s *Server) forget(p *peer) {
	s.mu.Lock()
	if s.peers[p.id] == p {
		delete(s.peers, p.id)
	}
	s.mu.Unlock()
}

// Peers is the number of WHEP sessions.
func (s *Server) Peers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

// Close ends every session.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ps := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.close("server closed")
		<-p.done
	}
	for _, p := range ps {
		if p.pc != nil {
			_ = p.pc.Close()
		}
	}
	s.hist.clear()
	return nil
}

// Feedback is the transport-wide congestion feedback of a server's remote
// sessions (AnswerRemote) since the previous RemoteFeedback: what the box
// needs to estimate its uplink (peer/box.UplinkEstimator).
type Feedback struct {
	// Sessions are the remote sessions whose path leaves the LAN (a
	// phone on the box's LAN that opened the hub's page does not use the
	// uplink); the sums are theirs.
	Sessions        int
	SentBytes       uint64
	DeliveredBytes  uint64 // reported received
	Received, Lost  uint64 // packets
	QueueDelay      time.Duration
	RemoteConnected int // every connected remote session, LAN or not
	// AllSkipping: the relay's policy skipped video frames for every one
	// of Sessions in the window. The policy keeps each session within
	// what reaches its phone, so a full uplink shows here as much as in
	// the delays; one phone's slow downlink does not (the others are
	// served whole).
	AllSkipping bool
}

// RemoteFeedback sums the remote sessions' feedback since the last call;
// QueueDelay is the largest of their standing queues (each session's
// smallest queueing delay in the window).
func (s *Server) RemoteFeedback() Feedback {
	s.mu.Lock()
	ps := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		if p.away {
			ps = append(ps, p)
		}
	}
	s.mu.Unlock()
	var f Feedback
	skipping := 0
	for _, p := range ps {
		fb := p.takeFeedback()
		vc := p.video.client.Load()
		if vc == nil {
			continue // not connected yet
		}
		f.RemoteConnected++
		if !p.uplink.Load() {
			continue
		}
		f.Sessions++
		if d := vc.Stats().DroppedUnits; d > p.dropped {
			skipping++
			p.dropped = d
		}
		f.SentBytes += fb.sent
		f.DeliveredBytes += fb.delivered
		f.Received += fb.received
		f.Lost += fb.lost
		if fb.queueN > 0 {
			f.QueueDelay = max(f.QueueDelay, time.Duration(fb.queueMin)*time.Microsecond)
		}
	}
	f.AllSkipping = f.Sessions > 0 && skipping == f.Sessions
	return f
}
