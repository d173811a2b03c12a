package box

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/coder/websocket"
)

// ClientConfig configures a box's connection to its hub.
type ClientConfig struct {
	HubURL string // wss://host:port/v1/ws (ws:// only to a loopback hub, or with InsecureHub)
	// InsecureHub allows plain ws:// to a hub that is not on loopback
	// (network labs). Without TLS anyone in the middle reads the box's
	// signalling; pairing stays safe (the owners compare the SAS), but
	// use it for tests only.
	InsecureHub bool
	Identity    *proto.Identity
	Name        string // human label sent to the hub and to peers
	// DataDir holds peers.json: the boxes this box has itself paired with.
	// Calls are accepted only from them, so a hub cannot invent a pair.
	DataDir string
	// HTTPClient dials the hub (nil: http.DefaultClient). Tests over a
	// virtual network put their own dialer in it.
	HTTPClient *http.Client
	// Ping is the keepalive interval on the hub connection (default 20 s).
	Ping time.Duration
	Now  func() time.Time
	Log  *slog.Logger
}

// Signal is a verified signalling message from a paired box.
type Signal struct {
	From string
	Call string
	Kind string
	SDP  string
}

// Client is a box's registered connection to the hub. It reconnects (and
// registers again) when the connection drops, e.g. on a network change.
type Client struct {
	cfg     ClientConfig
	signals chan Signal

	mu         sync.Mutex
	conn       *websocket.Conn
	welcome    proto.Message
	peers      map[string]proto.PeerInfo // pinned: paired from this box
	waiters    map[string][]chan proto.Message
	online     map[string]bool            // paired box -> connected to the hub
	onlineWait map[string][]chan struct{} // closed when that box comes online
	onPresence func(id string, online bool)
	// fanoutHandlers hear watch, unwatch and media signals (S7).
	fanoutHandlers []*func(Signal)
	ready          chan struct{} // closed when a connection is up; replaced on drop
	pair           *pairing      // the pairing under way, or the last one
	pairChange     chan struct{} // closed when pair changes; replaced
	iceAt          time.Time     // when the ICE servers were last received
	onPhone        PhoneHandler  // answers remote phones (phone.go)
	onPhoneBye     func(PhoneOffer)
	closed         bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Dial connects and registers, returning once the hub has welcomed the box.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Identity == nil {
		return nil, fmt.Errorf("peer: client needs an identity")
	}
	if err := CheckHubURL(cfg.HubURL, cfg.InsecureHub); err != nil {
		return nil, err
	}
	if cfg.Ping == 0 {
		cfg.Ping = 20 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Client{
		cfg:        cfg,
		signals:    make(chan Signal, 16),
		peers:      map[string]proto.PeerInfo{},
		waiters:    map[string][]chan proto.Message{},
		online:     map[string]bool{},
		onlineWait: map[string][]chan struct{}{},
		ready:      make(chan struct{}),
		pairChange: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if err := c.loadPeers(); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	go c.run(conn)
	return c, nil
}

// CheckHubURL accepts wss:// URLs, and ws:// ones to a loopback address
// or localhost (or any, with insecure).
func CheckHubURL(hubURL string, insecure bool) error {
	u, err := url.Parse(hubURL)
	if err != nil {
		return fmt.Errorf("peer: hub URL %q: %w", hubURL, err)
	}
	switch u.Scheme {
	case "wss":
		return nil
	case "ws":
		host := u.Hostname()
		if ip := net.ParseIP(host); insecure || host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("peer: hub URL %s: plain ws:// only to a hub on this machine; use wss://", hubURL)
	}
	return fmt.Errorf("peer: hub URL %q: want wss://host/v1/ws", hubURL)
}

// connect dials and registers once.
func (c *Client) connect(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, c.cfg.HubURL, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("peer: dial hub %s: %w", c.cfg.HubURL, err)
	}
	conn.SetReadLimit(proto.MaxMessageSize)
	nonce := make([]byte, proto.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: nonce: %w", err)
	}
	hello := proto.NewHello(c.cfg.Identity, c.cfg.Name, c.cfg.Now().UnixMilli(), nonce)
	if err := writeMsg(dctx, conn, &hello); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, b, err := conn.Read(dctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: hub welcome: %w", err)
	}
	m, err := proto.ParseMessage(b)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if m.Type == proto.TypeError {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: registration: %s", proto.ErrHub, m.Error)
	}
	if m.Type != proto.TypeWelcome || m.Box != c.cfg.Identity.ID {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: expected welcome for %s, got %s", proto.ErrBadMessage, c.cfg.Identity.ID, m.Type)
	}
	c.mu.Lock()
	c.conn = conn
	c.welcome = m
	close(c.ready)
	c.mu.Unlock()
	for _, p := range m.Peers {
		c.setOnline(p.ID, p.Online)
	}
	c.cfg.Log.Info("registered at hub", "box", c.cfg.Identity.ID, "peers", len(m.Peers))
	return conn, nil
}

func writeMsg(ctx context.Context, conn *websocket.Conn, m *proto.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("peer: encode %s: %w", m.Type, err)
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("peer: send %s: %w", m.Type, err)
	}
	return nil
}

// run reads messages, keeps the connection alive and reconnects with
// backoff when it drops.
func (c *Client) run(conn *websocket.Conn) {
	defer close(c.done)
	backoff := 250 * time.Millisecond
	for {
		c.serve(conn)
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		c.mu.Unlock()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			conn, err = c.connect(c.ctx)
			if err == nil {
				backoff = 250 * time.Millisecond
				break
			}
			c.cfg.Log.Warn("hub reconnect failed", "err", err)
			backoff = min(2*backoff, 10*time.Second)
		}
	}
}

func (c *Client) serve(conn *websocket.Conn) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	defer conn.CloseNow()
	go func() {
		t := time.NewTicker(c.cfg.Ping)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, c.cfg.Ping/2)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil {
					conn.CloseNow() // the read below fails and we reconnect
					return
				}
			}
		}
	}()
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if ctx.Err() == nil && !closed {
				c.cfg.Log.Warn("hub connection lost", "err", err)
			}
			return
		}
		m, err := proto.ParseMessage(b)
		if err != nil {
			c.cfg.Log.Warn("bad message from hub", "err", err)
			continue
		}
		c.dispatch(&m)
	}
}

func (c *Client) dispatch(m *proto.Message) {
	switch m.Type {
	case proto.TypeSignal:
		c.mu.Lock()
		p, ok := c.peers[m.From]
		c.mu.Unlock()
		if !ok {
			c.cfg.Log.Warn("signal from a box this box never paired with", "from", m.From)
			return
		}
		if err := proto.VerifySignal(p.Key, m); err != nil {
			c.cfg.Log.Warn("signal refused", "err", err)
			return
		}
		if m.Kind == proto.KindWatch || m.Kind == proto.KindUnwatch || m.Kind == proto.KindMedia {
			// S7 fan-out signals go to their handlers, never to a Caller.
			c.mu.Lock()
			hs := make([]func(Signal), 0, len(c.fanoutHandlers))
			for _, h := range c.fanoutHandlers {
				hs = append(hs, *h)
			}
			c.mu.Unlock()
			for _, h := range hs {
				h(Signal{From: m.From, Call: m.Call, Kind: m.Kind, SDP: m.SDP})
			}
			return
		}
		select {
		case c.signals <- Signal{From: m.From, Call: m.Call, Kind: m.Kind, SDP: m.SDP}:
		case <-c.ctx.Done():
		}
		return
	case proto.TypePaired:
		c.dispatchPairing(m)
		if p := c.Pairing(); p.Stage == PairDone && len(m.Peers) == 1 && p.PeerID == m.Peers[0].ID {
			c.setOnline(m.Peers[0].ID, m.Peers[0].Online)
		}
	case proto.TypePairRequest, proto.TypePairNonce, proto.TypePairReveal, proto.TypePairConfirm, proto.TypePairCancel, proto.TypeError:
		c.dispatchPairing(m)
	case proto.TypePhoneOffer, proto.TypePhoneBye:
		c.dispatchPhone(m)
		return
	case proto.TypeICE:
		c.mu.Lock()
		c.welcome.ICE = m.ICE
		c.mu.Unlock()
	case proto.TypePresence:
		for _, p := range m.Peers {
			c.setOnline(p.ID, p.Online)
		}
	case proto.TypeUnpaired:
		c.unpin(m.Peers)
	}
	c.mu.Lock()
	ws := c.waiters[m.Type]
	delete(c.waiters, m.Type)
	if m.Type == proto.TypeError {
		// An error answers the request named by Ref.
		ws = append(ws, c.waiters[m.Ref]...)
		delete(c.waiters, m.Ref)
	}
	c.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- *m:
		default: // a waiter that already has its answer
		}
	}
	if m.Type == proto.TypeError && len(ws) == 0 {
		c.cfg.Log.Warn("hub error", "ref", m.Ref, "err", m.Error)
	}
}

func (c *Client) setOnline(id string, on bool) {
	c.mu.Lock()
	c.online[id] = on
	for _, ch := range c.onlineWait[id] {
		if on {
			close(ch)
		}
	}
	if on {
		delete(c.onlineWait, id)
	}
	f := c.onPresence
	c.mu.Unlock()
	if f != nil {
		f(id, on)
	}
}

// OnPresence sets a function called whenever the hub reports a paired box
// online or offline, including after this box's own (re)registration.
func (c *Client) OnPresence(f func(id string, online bool)) {
	c.mu.Lock()
	c.onPresence = f
	c.mu.Unlock()
}

// onFanoutSignal adds a handler for the S7 fan-out signals (watch,
// unwatch, media) from paired boxes; it runs on the client's read loop and
// must not block. The returned function removes it.
func (c *Client) onFanoutSignal(f func(Signal)) (remove func()) {
	h := &f
	c.mu.Lock()
	c.fanoutHandlers = append(c.fanoutHandlers, h)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.fanoutHandlers {
			if x == h {
				c.fanoutHandlers = append(c.fanoutHandlers[:i], c.fanoutHandlers[i+1:]...)
				return
			}
		}
	}
}

// Online reports whether the hub last said the paired box id is connected.
func (c *Client) Online(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online[id]
}

// WaitOnline returns when the paired box id is connected to the hub (at
// once if it is), so that a call is not signalled into the void.
func (c *Client) WaitOnline(ctx context.Context, id string) error {
	c.mu.Lock()
	if c.online[id] {
		c.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	c.onlineWait[id] = append(c.onlineWait[id], ch)
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", proto.ErrOffline, id, ctx.Err())
	}
}

// ID is this box's ID.
func (c *Client) ID() string { return c.cfg.Identity.ID }

// Signals delivers verified signals from paired boxes.
func (c *Client) Signals() <-chan Signal { return c.signals }

// ICEServers are the STUN/TURN servers (with fresh TURN credentials) from
// the latest welcome.
func (c *Client) ICEServers() []proto.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome.ICE
}

// RefreshICE asks the hub for fresh ICE servers when the TURN credentials
// have less than half an hour left (the hub's last an hour), or when the
// box has paired boxes but no TURN credentials yet. A hub that does not
// answer within a few seconds leaves the old ones.
func (c *Client) RefreshICE(ctx context.Context) {
	c.mu.Lock()
	stale := len(c.peers) > 0
	for _, s := range c.welcome.ICE {
		if s.Username == "" {
			continue
		}
		exp, _, _ := strings.Cut(s.Username, ":")
		if sec, err := strconv.ParseInt(exp, 10, 64); err == nil {
			stale = time.Unix(sec, 0).Sub(c.cfg.Now()) < 30*time.Minute
		}
	}
	c.mu.Unlock()
	if !stale {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.request(rctx, &proto.Message{Type: proto.TypeICE}, proto.TypeICE); err != nil {
		c.cfg.Log.Warn("fresh ICE servers not received; using the old ones", "err", err)
	}
}

// send writes one message, waiting for a connection if one is being re-established.
func (c *Client) send(ctx context.Context, m *proto.Message) error {
	for {
		c.mu.Lock()
		conn, ready, closed := c.conn, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return proto.ErrClosed
		}
		if conn != nil {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := writeMsg(wctx, conn, m)
			cancel()
			c.mu.Lock()
			replaced := c.conn != conn
			c.mu.Unlock()
			if err == nil || !replaced {
				return err
			}
			// The connection died under the write (a network change):
			// send on the next one.
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("peer: waiting for the hub: %w", ctx.Err())
		}
	}
}

// request sends m and waits for the first message of type answer (or an
// error answering m).
func (c *Client) request(ctx context.Context, m *proto.Message, answer string) (proto.Message, error) {
	ch := make(chan proto.Message, 2)
	c.mu.Lock()
	c.waiters[answer] = append(c.waiters[answer], ch)
	if answer != m.Type {
		c.waiters[m.Type] = append(c.waiters[m.Type], ch)
	}
	c.mu.Unlock()
	if err := c.send(ctx, m); err != nil {
		return proto.Message{}, err
	}
	select {
	case r := <-ch:
		if r.Type == proto.TypeError {
			return r, fmt.Errorf("%w: %s: %s", proto.ErrHub, m.Type, r.Error)
		}
		return r, nil
	case <-ctx.Done():
		return proto.Message{}, fmt.Errorf("peer: %s: %w", m.Type, ctx.Err())
	}
}

// SendSignal signs and sends a signal to a paired box.
func (c *Client) SendSignal(ctx context.Context, to, call, kind, sdp string) error {
	m := proto.Message{Type: proto.TypeSignal, To: to, Call: call, Kind: kind, SDP: sdp}
	proto.SignSignal(c.cfg.Identity, &m)
	return c.send(ctx, &m)
}

// Check pings the hub; if no pong comes within timeout, it drops the
// connection so that the client reconnects at once. After a network change
// the old TCP connection may look alive for minutes: a call that lost its
// path checks the hub before signalling an ICE restart through it.
func (c *Client) Check(timeout time.Duration) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return nil // already reconnecting
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		c.cfg.Log.Info("hub connection stale; reconnecting", "err", err)
		conn.CloseNow()
		return fmt.Errorf("peer: hub ping: %w", err)
	}
	return nil
}

// Forget tells the hub that this box forgets itself (a factory reset): the
// hub deletes its record and pairs and tells its paired boxes. It returns
// once the hub has done so; the caller then closes the client and drops the
// identity.
func (c *Client) Forget(ctx context.Context) error {
	_, err := c.request(ctx, &proto.Message{Type: proto.TypeForget}, proto.TypeForget)
	return err
}

// Close hangs up on the hub and stops reconnecting.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close(websocket.StatusNormalClosure, "bye")
	}
	c.cancel()
	<-c.done
	return nil
}
