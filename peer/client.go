package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// ClientConfig configures a box's connection to its hub.
type ClientConfig struct {
	HubURL   string // ws://host:port/v1/ws (wss:// in production)
	Identity *Identity
	Name     string // human label sent to the hub and to peers
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
	welcome    Message
	peers      map[string]PeerInfo // pinned: paired from this box
	waiters    map[string][]chan Message
	online     map[string]bool            // paired box -> connected to the hub
	onlineWait map[string][]chan struct{} // closed when that box comes online
	onPresence func(id string, online bool)
	// fanoutHandlers hear watch, unwatch and media signals (S7).
	fanoutHandlers []*func(Signal)
	ready          chan struct{} // closed when a connection is up; replaced on drop
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
		peers:      map[string]PeerInfo{},
		waiters:    map[string][]chan Message{},
		online:     map[string]bool{},
		onlineWait: map[string][]chan struct{}{},
		ready:      make(chan struct{}),
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

// connect dials and registers once.
func (c *Client) connect(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, c.cfg.HubURL, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("peer: dial hub %s: %w", c.cfg.HubURL, err)
	}
	conn.SetReadLimit(MaxMessageSize)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: nonce: %w", err)
	}
	hello := NewHello(c.cfg.Identity, c.cfg.Name, c.cfg.Now().UnixMilli(), nonce)
	if err := writeMsg(dctx, conn, &hello); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, b, err := conn.Read(dctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: hub welcome: %w", err)
	}
	m, err := ParseMessage(b)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if m.Type == TypeError {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: registration: %s", ErrHub, m.Error)
	}
	if m.Type != TypeWelcome || m.Box != c.cfg.Identity.ID {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: expected welcome for %s, got %s", ErrBadMessage, c.cfg.Identity.ID, m.Type)
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

func writeMsg(ctx context.Context, conn *websocket.Conn, m *Message) error {
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
		m, err := ParseMessage(b)
		if err != nil {
			c.cfg.Log.Warn("bad message from hub", "err", err)
			continue
		}
		c.dispatch(&m)
	}
}

func (c *Client) dispatch(m *Message) {
	switch m.Type {
	case TypeSignal:
		c.mu.Lock()
		p, ok := c.peers[m.From]
		c.mu.Unlock()
		if !ok {
			c.cfg.Log.Warn("signal from a box this box never paired with", "from", m.From)
			return
		}
		if err := VerifySignal(p.Key, m); err != nil {
			c.cfg.Log.Warn("signal refused", "err", err)
			return
		}
		if m.Kind == KindWatch || m.Kind == KindUnwatch || m.Kind == KindMedia {
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
	case TypePaired:
		for _, p := range m.Peers {
			c.pin(p)
			c.setOnline(p.ID, p.Online)
		}
	case TypePresence:
		for _, p := range m.Peers {
			c.setOnline(p.ID, p.Online)
		}
	}
	c.mu.Lock()
	ws := c.waiters[m.Type]
	delete(c.waiters, m.Type)
	if m.Type == TypeError {
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
	if m.Type == TypeError && len(ws) == 0 {
		c.cfg.Log.Warn("hub error", "ref", m.Ref, "err", m.Error)
	}
}

// pin records a peer this box paired with (the hub's peer list is only
// used for names and online state).
func (c *Client) pin(p PeerInfo) {
	if BoxID(p.Key) != p.ID {
		return
	}
	c.mu.Lock()
	c.peers[p.ID] = PeerInfo{ID: p.ID, Key: p.Key, Name: p.Name}
	err := c.savePeersLocked()
	c.mu.Unlock()
	if err != nil {
		c.cfg.Log.Warn("peers not saved", "err", err)
	}
}

func (c *Client) peersPath() string {
	if c.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(c.cfg.DataDir, "peers.json")
}

func (c *Client) loadPeers() error {
	p := c.peersPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	var list []PeerInfo
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("peer: %s: %w", p, err)
	}
	for _, pi := range list {
		if BoxID(pi.Key) == pi.ID {
			c.peers[pi.ID] = pi
		}
	}
	return nil
}

func (c *Client) savePeersLocked() error {
	p := c.peersPath()
	if p == "" {
		return nil
	}
	list := make([]PeerInfo, 0, len(c.peers))
	for _, pi := range c.peers {
		list = append(list, pi)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
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
		return fmt.Errorf("%w: %s: %w", ErrOffline, id, ctx.Err())
	}
}

// ID is this box's ID.
func (c *Client) ID() string { return c.cfg.Identity.ID }

// Signals delivers verified signals from paired boxes.
func (c *Client) Signals() <-chan Signal { return c.signals }

// ICEServers are the STUN/TURN servers (with fresh TURN credentials) from
// the latest welcome.
func (c *Client) ICEServers() []ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome.ICE
}

// Peers lists the boxes this box has paired with, with the hub's online
// state where the hub knows them.
func (c *Client) Peers() []PeerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PeerInfo, 0, len(c.peers))
	for _, p := range c.peers {
		p.Online = c.online[p.ID]
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Resolve finds a paired box by ID or name.
func (c *Client) Resolve(peer string) (PeerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.peers[peer]; ok {
		return p, nil
	}
	var found []PeerInfo
	for _, p := range c.peers {
		if p.Name == peer {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return PeerInfo{}, fmt.Errorf("%w: %q", ErrUnknownPeer, peer)
	}
	return PeerInfo{}, fmt.Errorf("%w: %q names %d boxes; use the ID", ErrUnknownPeer, peer, len(found))
}

// send writes one message, waiting for a connection if one is being re-established.
func (c *Client) send(ctx context.Context, m *Message) error {
	for {
		c.mu.Lock()
		conn, ready, closed := c.conn, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return ErrClosed
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
func (c *Client) request(ctx context.Context, m *Message, answer string) (Message, error) {
	ch := make(chan Message, 2)
	c.mu.Lock()
	c.waiters[answer] = append(c.waiters[answer], ch)
	if answer != m.Type {
		c.waiters[m.Type] = append(c.waiters[m.Type], ch)
	}
	c.mu.Unlock()
	if err := c.send(ctx, m); err != nil {
		return Message{}, err
	}
	select {
	case r := <-ch:
		if r.Type == TypeError {
			return r, fmt.Errorf("%w: %s: %s", ErrHub, m.Type, r.Error)
		}
		return r, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("peer: %s: %w", m.Type, ctx.Err())
	}
}

// RequestPairCode asks the hub for a code the other box enters.
func (c *Client) RequestPairCode(ctx context.Context) (code string, expires time.Time, err error) {
	r, err := c.request(ctx, &Message{Type: TypePairCode}, TypePairCode)
	if err != nil {
		return "", time.Time{}, err
	}
	return r.Code, time.Unix(r.Expires, 0), nil
}

// WaitPaired waits for the hub to report a new pairing.
func (c *Client) WaitPaired(ctx context.Context) (PeerInfo, error) {
	ch := make(chan Message, 1)
	c.mu.Lock()
	c.waiters[TypePaired] = append(c.waiters[TypePaired], ch)
	c.mu.Unlock()
	select {
	case r := <-ch:
		if len(r.Peers) == 0 {
			return PeerInfo{}, fmt.Errorf("%w: paired without a peer", ErrBadMessage)
		}
		return r.Peers[0], nil
	case <-ctx.Done():
		return PeerInfo{}, fmt.Errorf("peer: waiting for pairing: %w", ctx.Err())
	}
}

// JoinPairCode enters the code another box got from RequestPairCode.
func (c *Client) JoinPairCode(ctx context.Context, code string) (PeerInfo, error) {
	r, err := c.request(ctx, &Message{Type: TypePairJoin, Code: code}, TypePaired)
	if err != nil {
		return PeerInfo{}, err
	}
	if len(r.Peers) == 0 {
		return PeerInfo{}, fmt.Errorf("%w: paired without a peer", ErrBadMessage)
	}
	return r.Peers[0], nil
}

// PressPairButton reports a button press to the hub; it returns when
// another box's press within the hub's window has paired the two, or when
// ctx ends. The board calls it when the pairing button is held.
func (c *Client) PressPairButton(ctx context.Context) (PeerInfo, error) {
	r, err := c.request(ctx, &Message{Type: TypePairButton}, TypePaired)
	if err != nil {
		return PeerInfo{}, err
	}
	if len(r.Peers) == 0 {
		return PeerInfo{}, fmt.Errorf("%w: paired without a peer", ErrBadMessage)
	}
	return r.Peers[0], nil
}

// SendSignal signs and sends a signal to a paired box.
func (c *Client) SendSignal(ctx context.Context, to, call, kind, sdp string) error {
	m := Message{Type: TypeSignal, To: to, Call: call, Kind: kind, SDP: sdp}
	SignSignal(c.cfg.Identity, &m)
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

// PeerKey returns the pinned key of a paired box.
func (c *Client) PeerKey(id string) (ed25519.PublicKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.peers[id]
	return p.Key, ok
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
