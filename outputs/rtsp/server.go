// Package rtsp serves the box's stream to RTSP readers (VLC, ffmpeg,
// GStreamer, NVRs, Home Assistant) at rtsp://<box>:8554/live: the video
// (JPEG, RFC 2435, or H.264, RFC 6184, whichever the box publishes) and
// PCMU audio, over TCP interleaved and UDP.
//
// RTSP itself (DESCRIBE, SETUP, PLAY, keepalives, Basic and Digest
// authentication, UDP port negotiation) is github.com/bluenviron/gortsplib.
// The media is not: every reader is a client of the box's relay (package
// relay) with the relay's per-client policy, exactly like a phone. A busy
// reader's frames are buffered and flushed to the next frame a decoder can
// start from, a stalled one is cut within the relay's bounds, and a frame
// reaches a reader whole or not at all. The relay writes each round of
// whole frames with one writev straight on the reader's socket
// (tcpMedia); gortsplib only ever writes its RTSP answers there.
//
// Access: a pairing token is the password (any user name), checked with
// Digest (against the tokens the access.Gate has seen since boot) or
// Basic. With an open gate (--open) nothing is asked.
package rtsp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/outputs/access"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtcp"
)

// DefaultAddr is the RTSP listener's default address (the RTSP port that
// mediamtx and go2rtc use too, so NVR presets work).
const DefaultAddr = ":8554"

// Path is the stream's path: rtsp://<box>:8554/live.
const Path = "live"

// Config configures a Server.
type Config struct {
	// Addr is the TCP listener, e.g. ":8554"; port 0 picks one.
	Addr string
	// UDPPort is the server's RTP port for the UDP transport (even; RTCP
	// is the next one). 0 turns UDP off: readers must use TCP.
	UDPPort int
	// Relay is the box's relay; readers become its clients.
	Relay *relay.Relay
	// Gate checks tokens; nil or open admits everyone.
	Gate *access.Gate
	// Owner names the phone a token belongs to (relay.Config.Owner): a
	// reader's relay sessions carry its token's, so unpairing that phone
	// ends them (relay.DisconnectOwner). Nil: none.
	Owner func(token string) string
	// Publisher, when set, lets one RTSP client publish to the path
	// (ANNOUNCE/RECORD) into the relay as this publisher. The appliance
	// leaves it nil; the benchmark uses it so that the same load harness
	// publishes to the box and to other relays.
	Publisher *relay.Publisher
	// Log may be nil.
	Log *slog.Logger
}

// Server is the RTSP server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	srv  *gortsplib.Server
	ln   net.Listener
	udp  [2]*net.UDPConn // RTP, RTCP
	umu  sync.Mutex
	wg   sync.WaitGroup
	done chan struct{}

	mu         sync.Mutex
	stream     *gortsplib.ServerStream
	codec      capture.Codec
	publishing *gortsplib.ServerSession
}

// New starts an RTSP server.
func New(cfg Config) (*Server, error) {
	if cfg.Relay == nil {
		return nil, errors.New("rtsp: no relay")
	}
	if cfg.UDPPort%2 != 0 || cfg.UDPPort < 0 || cfg.UDPPort > 65534 {
		return nil, fmt.Errorf("rtsp: UDP port %d: must be even (RTCP is the next one)", cfg.UDPPort)
	}
	s := &Server{cfg: cfg, log: cfg.Log, done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = &gortsplib.Server{
		Handler:     s,
		RTSPAddress: cfg.Addr,
		// The relay writes the media; gortsplib would send sender
		// reports about packets it never saw.
		DisableRTCPSenderReports: true,
		AuthMethods:              []auth.VerifyMethod{auth.VerifyMethodBasic, auth.VerifyMethodDigestMD5},
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			s.ln = ln
			return &listener{Listener: ln}, nil
		},
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			pc, err := net.ListenPacket(network, address)
			if err != nil {
				return nil, err
			}
			uc, ok := pc.(*net.UDPConn)
			if !ok {
				pc.Close()
				return nil, fmt.Errorf("rtsp: %s is not UDP", address)
			}
			s.umu.Lock()
			if s.udp[0] == nil {
				s.udp[0] = uc
			} else {
				s.udp[1] = uc
			}
			s.umu.Unlock()
			return pc, nil
		},
	}
	if cfg.UDPPort != 0 {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("rtsp: %w", err)
		}
		s.srv.UDPRTPAddress = net.JoinHostPort(host, strconv.Itoa(cfg.UDPPort))
		s.srv.UDPRTCPAddress = net.JoinHostPort(host, strconv.Itoa(cfg.UDPPort+1))
	}
	if err := s.srv.Start(); err != nil {
		return nil, fmt.Errorf("rtsp: %w", err)
	}
	return s, nil
}

// Addr is the TCP listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and disconnects every reader.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.srv.Close()
	s.wg.Wait()
	s.mu.Lock()
	if s.stream != nil {
		s.stream.Close()
		s.stream = nil
	}
	s.mu.Unlock()
}

// currentStream is the description for the codec the relay carries now;
// a new codec (the H.264 encoder taking over from JPEG) makes a new one.
// H.264 wins when the box publishes it beside JPEG (codec auto: JPEG for
// the WebSocket page): readers attach for the stream's codec only.
func (s *Server) currentStream() (*gortsplib.ServerStream, error) {
	codec := s.cfg.Relay.VideoCodec()
	if s.cfg.Relay.Publishing(capture.CodecH264) {
		codec = capture.CodecH264
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != nil && s.codec == codec {
		return s.stream, nil
	}
	var vf format.Format = &format.MJPEG{}
	if codec == capture.CodecH264 {
		vf = &format.H264{PayloadTyp: capture.PayloadTypeH264, PacketizationMode: 1}
	}
	st := &gortsplib.ServerStream{
		Server: s.srv,
		Desc: &description.Session{
			Title: "callbox",
			Medias: []*description.Media{
				{Type: description.MediaTypeVideo, Control: "trackID=0", Formats: []format.Format{vf}},
				{Type: description.MediaTypeAudio, Control: "trackID=1", Formats: []format.Format{
					&format.G711{PayloadTyp: capture.PayloadTypePCMU, MULaw: true, SampleRate: 8000, ChannelCount: 1}}},
			},
		},
	}
	if err := st.Initialize(); err != nil {
		return nil, err
	}
	if s.stream != nil {
		s.stream.Close() // its readers carry the old codec: they reconnect
	}
	s.stream, s.codec = st, codec
	return st, nil
}

// connState is per RTSP connection.
type connState struct {
	sock    *sockConn
	lastReq *base.Request
}

// readerState is per RTSP session that plays.
type readerState struct {
	mu      sync.Mutex
	medias  []setupMedia
	conns   []media
	udps    []*udpMedia // for RTCP reports
	started bool
	closed  bool
	owner   string // the token's owner, from PLAY (Config.Owner)
}

// media is a reader's media kind as a relay client.
type media interface {
	relay.NonBlockingConn
	// acked blocks until the client has taken more and says how many
	// packets: the Health Check, passed on with relay.Client.Ack.
	acked() (int, error)
	stop() // the RTSP session ended: stop sending, leave the connection
}

type setupMedia struct {
	kind       capture.Kind
	tcp        bool
	channel    int
	client     netip.AddrPort // UDP: the client's RTP port
	clientRTCP netip.AddrPort
}

func (s *Server) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	st := &connState{}
	st.sock, _ = ctx.Conn.NetConn().(*sockConn)
	ctx.Conn.SetUserData(st)
}

func (s *Server) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if st, ok := sc.UserData().(*connState); ok {
		st.lastReq = req
	}
}

// authorized checks the request's credentials: a pairing token as the
// password, any user name; Basic against the pairing registry, Digest
// against the tokens the gate knows in clear.
func (s *Server) authorized(sc *gortsplib.ServerConn, req *base.Request) bool {
	_, ok := s.authorizedToken(sc, req)
	return ok
}

// authorizedToken is authorized, and the token that passed ("" when the
// gate is open).
func (s *Server) authorizedToken(sc *gortsplib.ServerConn, req *base.Request) (string, bool) {
	if s.cfg.Gate.Open() {
		return "", true
	}
	// Makes gortsplib create this connection's Digest nonce, which its 401
	// answer announces; the password cannot match.
	sc.VerifyCredentials(req, "callbox", "\x00")
	var a headers.Authorization
	if err := a.Unmarshal(req.Header["Authorization"]); err != nil {
		return "", false
	}
	switch a.Method {
	case headers.AuthMethodBasic:
		return a.BasicPass, s.cfg.Gate.Check(a.BasicPass) == nil
	case headers.AuthMethodDigest:
		if a.Username == "" {
			return "", false
		}
		for _, tok := range s.cfg.Gate.Known() {
			if sc.VerifyCredentials(req, a.Username, tok) {
				return tok, true
			}
		}
	}
	return "", false
}

var errAuth = liberrors.ErrServerAuth{}

func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, errAuth
	}
	if strings.Trim(ctx.Path, "/") != Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	st, err := s.currentStream()
	if err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, errAuth
	}
	if strings.Trim(ctx.Path, "/") != Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if ctx.Transport.Protocol == gortsplib.ProtocolUDPMulticast {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	st, err := s.currentStream()
	if err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (s *Server) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	tok, ok := s.authorizedToken(ctx.Conn, ctx.Request)
	if !ok {
		return &base.Response{StatusCode: base.StatusUnauthorized}, errAuth
	}
	// A UDP reader's RTCP is its liveness (udpMedia). gortsplib wants the
	// callback set before the session plays.
	rs := readerOf(ctx.Session)
	if s.cfg.Owner != nil && tok != "" {
		rs.mu.Lock()
		rs.owner = s.cfg.Owner(tok)
		rs.mu.Unlock()
	}
	ctx.Session.OnPacketRTCPAny(func(*description.Media, rtcp.Packet) {
		rs.mu.Lock()
		udps := rs.udps
		rs.mu.Unlock()
		for _, u := range udps {
			u.report()
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnResponse sees every answer before gortsplib writes it: a SETUP answer
// tells which media went on which channel or ports (and loses its ssrc:
// the relay forwards the box's packets, whose SSRC gortsplib cannot know),
// and a PLAY answer starts the media right after it is on the wire.
func (s *Server) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	st, ok := sc.UserData().(*connState)
	if !ok || st.lastReq == nil || res.StatusCode != base.StatusOK {
		return
	}
	ss := sc.Session()
	switch st.lastReq.Method {
	case base.Setup:
		if ss == nil || ss.State() == gortsplib.ServerSessionStatePreRecord {
			return
		}
		var th headers.Transport
		if err := th.Unmarshal(res.Header["Transport"]); err != nil {
			return
		}
		th.SSRC = nil
		res.Header["Transport"] = th.Marshal()
		kind := capture.KindVideo
		if strings.HasSuffix(st.lastReq.URL.Path, "trackID=1") {
			kind = capture.KindAudio
		}
		m := setupMedia{kind: kind}
		switch {
		case th.InterleavedIDs != nil:
			m.tcp, m.channel = true, th.InterleavedIDs[0]
		case th.ClientPorts != nil:
			// Media goes to the address the request came from, never to a
			// "destination" the client names: the box is no reflector.
			ip := sc.NetConn().RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			m.client = netip.AddrPortFrom(ip, uint16(th.ClientPorts[0]))
			m.clientRTCP = netip.AddrPortFrom(ip, uint16(th.ClientPorts[1]))
		default:
			return
		}
		rs := readerOf(ss)
		rs.mu.Lock()
		rs.medias = append(rs.medias, m)
		rs.mu.Unlock()
	case base.Play:
		if ss == nil || st.sock == nil {
			return
		}
		rs := readerOf(ss)
		st.sock.onNextWrite(func() { s.play(ss, rs, st.sock) })
	}
}

func readerOf(ss *gortsplib.ServerSession) *readerState {
	if rs, ok := ss.UserData().(*readerState); ok {
		return rs
	}
	rs := &readerState{}
	ss.SetUserData(rs)
	return rs
}

// play makes each set-up media of the session a relay client.
func (s *Server) play(ss *gortsplib.ServerSession, rs *readerState, sock *sockConn) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.started || rs.closed {
		return
	}
	rs.started = true
	var udps []*udpMedia
	for _, m := range rs.medias {
		var c media
		if m.tcp {
			c = newTCPMedia(sock, m.channel)
		} else {
			s.umu.Lock()
			rtp, rtcp := s.udp[0], s.udp[1]
			s.umu.Unlock()
			if rtp == nil || rtcp == nil {
				continue
			}
			u := newUDPMedia(rtp, rtcp, m.client, m.clientRTCP, ss.Close)
			udps = append(udps, u)
			c = u
		}
		opt := relay.AttachOptions{Owner: rs.owner}
		if m.kind == capture.KindVideo {
			s.mu.Lock()
			opt.Codec = s.codec // the codec the reader's description announced
			s.mu.Unlock()
		}
		cl, err := s.cfg.Relay.Attach(m.kind, c, opt)
		if err != nil {
			s.log.Info("rtsp: reader refused", "remote", c.RemoteAddr(), "err", err)
			c.Abort()
			continue
		}
		if tm, ok := c.(*tcpMedia); ok {
			tm.client.Store(cl)
		}
		rs.conns = append(rs.conns, c)
		kind := m.kind
		s.wg.Add(2)
		go func() { // the Health Checks
			defer s.wg.Done()
			for {
				n, err := c.acked()
				if err != nil {
					cl.Close()
					return
				}
				cl.AckNow(n)
			}
		}()
		go func() {
			defer s.wg.Done()
			<-cl.Done()
			// The relay has aborted c already if it ejected the client
			// (the whole reader goes); stop ends the Health Check loop.
			c.stop()
			s.log.Info("rtsp: reader left", "remote", c.RemoteAddr(), "kind", kind, "why", cl.Err())
		}()
	}
	rs.udps = udps
}

func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	if s.publishing == ctx.Session {
		s.publishing = nil
	}
	s.mu.Unlock()
	rs, ok := ctx.Session.UserData().(*readerState)
	if !ok {
		return
	}
	rs.mu.Lock()
	rs.closed = true
	conns := rs.conns
	rs.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
}

// keepalive answers: GET_PARAMETER and OPTIONS keep a session alive.
func (s *Server) OnGetParameter(*gortsplib.ServerHandlerOnGetParameterCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *Server) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	s.log.Debug("rtsp: connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}
