package hub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/coder/websocket"
)

// Config configures a Hub.
type Config struct {
	// StatePath is the JSON file holding registered boxes and pairs, so a
	// pairing survives a hub restart. Empty keeps the state in memory.
	StatePath string
	// STUNURLs and TURNURLs are handed to boxes in the welcome, e.g.
	// "stun:hub.example:3478" and "turn:hub.example:3478?transport=udp".
	STUNURLs, TURNURLs []string
	// TURNSecret signs the TURN REST credentials (coturn's static-auth-secret).
	TURNSecret string
	// CredentialTTL is how long TURN credentials stay valid (default 24 h).
	CredentialTTL time.Duration
	// ClockSkew bounds |hub clock - hello timestamp| (default 60 s). Nonces
	// are remembered for twice as long, which is what makes a replay fail.
	ClockSkew time.Duration
	// PairCodeTTL is how long a pairing code is valid (default 5 min).
	PairCodeTTL time.Duration
	// ButtonWindow is how close two button presses must be to pair (default 15 s).
	ButtonWindow time.Duration
	// MaxCodeTries is how many wrong codes a connection may enter before
	// the hub hangs up on it (default 5): a 6-digit code must not be guessable.
	MaxCodeTries int
	Now          func() time.Time
	Log          *slog.Logger
}

func (c *Config) defaults() {
	if c.CredentialTTL == 0 {
		c.CredentialTTL = 24 * time.Hour
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 60 * time.Second
	}
	if c.PairCodeTTL == 0 {
		c.PairCodeTTL = 5 * time.Minute
	}
	if c.ButtonWindow == 0 {
		c.ButtonWindow = 15 * time.Second
	}
	if c.MaxCodeTries == 0 {
		c.MaxCodeTries = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Hub is the rendezvous server: registration, pairing and signalling
// between paired boxes. It never handles media (see TURNServer for the relay).
type Hub struct {
	cfg Config

	mu       sync.Mutex
	state    hubState
	sessions map[string]*Session    // box ID -> its live connection
	nonces   map[string]time.Time   // box ID + nonce -> when it may be forgotten
	codes    map[string]pendingCode // pairing code -> who asked
	button   *pendingPress          // the last unmatched button press
	tries    map[*Session]int       // wrong pairing codes per connection
}

type hubState struct {
	Boxes map[string]boxRecord `json:"boxes"`
	Pairs map[string][]string  `json:"pairs"` // box ID -> paired box IDs (both directions)
}

type boxRecord struct {
	Key      []byte    `json:"key"`
	Name     string    `json:"name,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

type pendingCode struct {
	box     string
	expires time.Time
}

type pendingPress struct {
	box string
	at  time.Time
}

// Session is one box's authenticated connection. Send delivers a message to
// the box; Close hangs up. The WebSocket server makes them; tests make their own.
type Session struct {
	Box   string
	Send  func(proto.Message) error
	Close func()
}

// New loads the state file (if any) and returns a hub.
func New(cfg Config) (*Hub, error) {
	cfg.defaults()
	h := &Hub{
		cfg:      cfg,
		state:    hubState{Boxes: map[string]boxRecord{}, Pairs: map[string][]string{}},
		sessions: map[string]*Session{},
		nonces:   map[string]time.Time{},
		codes:    map[string]pendingCode{},
		tries:    map[*Session]int{},
	}
	if cfg.StatePath != "" {
		b, err := os.ReadFile(cfg.StatePath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("peer: hub state: %w", err)
		default:
			if err := json.Unmarshal(b, &h.state); err != nil {
				return nil, fmt.Errorf("peer: hub state %s: %w", cfg.StatePath, err)
			}
			if h.state.Boxes == nil {
				h.state.Boxes = map[string]boxRecord{}
			}
			if h.state.Pairs == nil {
				h.state.Pairs = map[string][]string{}
			}
		}
	}
	return h, nil
}

// saveLocked writes the state file atomically (write, then rename).
func (h *Hub) saveLocked() error {
	if h.cfg.StatePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(&h.state, "", "  ")
	if err != nil {
		return fmt.Errorf("peer: hub state: %w", err)
	}
	tmp := h.cfg.StatePath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(h.cfg.StatePath), 0o700); err != nil {
		return fmt.Errorf("peer: hub state dir: %w", err)
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("peer: hub state: %w", err)
	}
	if err := os.Rename(tmp, h.cfg.StatePath); err != nil {
		return fmt.Errorf("peer: hub state: %w", err)
	}
	return nil
}

// VerifyHello checks a registration: the ID belongs to the key, the
// signature is the key's, the timestamp is recent and the nonce unused. A
// nonce is remembered only once the rest has verified, so a forger cannot
// burn a real box's nonces.
func (h *Hub) VerifyHello(m *proto.Message) error {
	if m.Type != proto.TypeHello {
		return fmt.Errorf("%w: first message must be %s, got %q", proto.ErrBadMessage, proto.TypeHello, m.Type)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := proto.VerifyHelloSignature(m); err != nil {
		return err
	}
	now := h.cfg.Now()
	ts := time.UnixMilli(m.TS)
	if d := now.Sub(ts); d > h.cfg.ClockSkew || d < -h.cfg.ClockSkew {
		return fmt.Errorf("%w: timestamp %s is %v from the hub's clock (limit %v)", proto.ErrReplay, ts.UTC().Format(time.RFC3339), d.Round(time.Second), h.cfg.ClockSkew)
	}
	key := m.Box + "/" + string(m.Nonce)
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, exp := range h.nonces {
		if now.After(exp) {
			delete(h.nonces, k)
		}
	}
	if _, seen := h.nonces[key]; seen {
		return fmt.Errorf("%w: nonce already used by %s", proto.ErrReplay, m.Box)
	}
	h.nonces[key] = now.Add(2 * h.cfg.ClockSkew)
	return nil
}

// Register verifies hello, attaches s as the box's connection (a newer
// connection replaces an older one) and sends the box its welcome, which it
// also returns.
func (h *Hub) Register(s *Session, hello *proto.Message) (proto.Message, error) {
	if err := h.VerifyHello(hello); err != nil {
		return proto.Message{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.Box = hello.Box
	if old := h.sessions[s.Box]; old != nil && old != s && old.Close != nil {
		old.Close()
	}
	h.sessions[s.Box] = s
	h.state.Boxes[s.Box] = boxRecord{Key: hello.Key, Name: hello.Name, LastSeen: h.cfg.Now().UTC()}
	if err := h.saveLocked(); err != nil {
		h.cfg.Log.Warn("hub state not saved", "err", err)
	}
	w := proto.Message{Type: proto.TypeWelcome, Box: s.Box, ICE: h.iceServers(s.Box), Peers: h.peersLocked(s.Box)}
	// The welcome goes out under the lock, before anyone learns that this
	// box is online: the first message a box reads is always its welcome,
	// never a signal from a peer that was quicker.
	if err := s.Send(w); err != nil {
		delete(h.sessions, s.Box)
		return proto.Message{}, fmt.Errorf("peer: welcome %s: %w", s.Box, err)
	}
	h.presenceLocked(s.Box, true)
	return w, nil
}

// Unregister detaches s if it is still its box's connection.
func (h *Hub) Unregister(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.Box] == s {
		delete(h.sessions, s.Box)
		h.presenceLocked(s.Box, false)
	}
	delete(h.tries, s)
	if h.button != nil && h.button.box == s.Box {
		h.button = nil
	}
}

func (h *Hub) iceServers(box string) []proto.ICEServer {
	var out []proto.ICEServer
	if len(h.cfg.STUNURLs) > 0 {
		out = append(out, proto.ICEServer{URLs: h.cfg.STUNURLs})
	}
	if len(h.cfg.TURNURLs) > 0 && h.cfg.TURNSecret != "" {
		u, p := TURNCredentials(h.cfg.TURNSecret, box, h.cfg.Now().Add(h.cfg.CredentialTTL))
		out = append(out, proto.ICEServer{URLs: h.cfg.TURNURLs, Username: u, Credential: p})
	}
	return out
}

func (h *Hub) peersLocked(box string) []proto.PeerInfo {
	var out []proto.PeerInfo
	for _, id := range h.state.Pairs[box] {
		r := h.state.Boxes[id]
		out = append(out, proto.PeerInfo{ID: id, Key: r.Key, Name: r.Name, Online: h.sessions[id] != nil})
	}
	return out
}

// presenceLocked tells box's online paired peers that it came or went, so
// a box waiting to call it can go ahead.
func (h *Hub) presenceLocked(box string, online bool) {
	r := h.state.Boxes[box]
	for _, id := range h.state.Pairs[box] {
		if s := h.sessions[id]; s != nil {
			_ = s.Send(proto.Message{Type: proto.TypePresence, Peers: []proto.PeerInfo{{ID: box, Key: r.Key, Name: r.Name, Online: online}}})
		}
	}
}

func (h *Hub) pairedLocked(a, b string) bool {
	for _, id := range h.state.Pairs[a] {
		if id == b {
			return true
		}
	}
	return false
}

// pairLocked records a pair and tells both boxes (if connected).
func (h *Hub) pairLocked(a, b string) {
	if a == b {
		return
	}
	if !h.pairedLocked(a, b) {
		h.state.Pairs[a] = append(h.state.Pairs[a], b)
		h.state.Pairs[b] = append(h.state.Pairs[b], a)
		sort.Strings(h.state.Pairs[a])
		sort.Strings(h.state.Pairs[b])
		if err := h.saveLocked(); err != nil {
			h.cfg.Log.Warn("hub state not saved", "err", err)
		}
	}
	h.cfg.Log.Info("paired", "a", a, "b", b)
	for _, x := range [][2]string{{a, b}, {b, a}} {
		if s := h.sessions[x[0]]; s != nil {
			r := h.state.Boxes[x[1]]
			// Sent under the lock so that "paired" is ordered before any
			// signal the other box sends once it knows the pair.
			_ = s.Send(proto.Message{Type: proto.TypePaired, Peers: []proto.PeerInfo{{ID: x[1], Key: r.Key, Name: r.Name, Online: h.sessions[x[1]] != nil}}})
		}
	}
}

// Paired reports whether a and b are paired.
func (h *Hub) Paired(a, b string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pairedLocked(a, b)
}

// errTooManyTries closes a connection that guessed too many codes.
var errTooManyTries = errors.New("peer: too many wrong pairing codes")

// Handle processes one message from an authenticated session. An error is
// sent back to the box as an error message; errTooManyTries also hangs up.
func (h *Hub) Handle(s *Session, m *proto.Message) error {
	now := h.cfg.Now()
	switch m.Type {
	case proto.TypePing:
		return s.Send(proto.Message{Type: proto.TypePong})
	case proto.TypePairCode:
		code, err := randomCode()
		if err != nil {
			return err
		}
		h.mu.Lock()
		for c, p := range h.codes {
			if now.After(p.expires) || p.box == s.Box {
				delete(h.codes, c)
			}
		}
		exp := now.Add(h.cfg.PairCodeTTL)
		h.codes[code] = pendingCode{box: s.Box, expires: exp}
		h.mu.Unlock()
		return s.Send(proto.Message{Type: proto.TypePairCode, Code: code, Expires: exp.Unix()})
	case proto.TypePairJoin:
		h.mu.Lock()
		defer h.mu.Unlock()
		p, ok := h.codes[m.Code]
		if !ok || now.After(p.expires) || p.box == s.Box {
			h.tries[s]++
			if h.tries[s] >= h.cfg.MaxCodeTries {
				return fmt.Errorf("%w: %w", errTooManyTries, proto.ErrBadCode)
			}
			return proto.ErrBadCode
		}
		delete(h.codes, m.Code)
		h.pairLocked(p.box, s.Box)
		return nil
	case proto.TypePairButton:
		h.mu.Lock()
		defer h.mu.Unlock()
		if b := h.button; b != nil && b.box != s.Box && now.Sub(b.at) <= h.cfg.ButtonWindow && h.sessions[b.box] != nil {
			h.button = nil
			h.pairLocked(b.box, s.Box)
			return nil
		}
		h.button = &pendingPress{box: s.Box, at: now}
		return nil
	case proto.TypeSignal:
		h.mu.Lock()
		paired := h.pairedLocked(s.Box, m.To)
		dst := h.sessions[m.To]
		h.mu.Unlock()
		if !paired {
			return fmt.Errorf("%w: %s and %s", proto.ErrNotPaired, s.Box, m.To)
		}
		if dst == nil {
			return fmt.Errorf("%w: %s", proto.ErrOffline, m.To)
		}
		fwd := *m
		fwd.From = s.Box // never trust a box's own From
		if err := dst.Send(fwd); err != nil {
			return fmt.Errorf("%w: %s: %w", proto.ErrOffline, m.To, err)
		}
		return nil
	}
	return fmt.Errorf("%w: a box may not send %q", proto.ErrBadMessage, m.Type)
}

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("peer: pairing code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// errorMessage turns an error into the message sent to the box.
func errorMessage(ref string, err error) proto.Message {
	return proto.Message{Type: proto.TypeError, Ref: ref, Error: err.Error()}
}

// ServeHTTP upgrades to a WebSocket and runs one box's session: a signed
// hello first, then requests until either side hangs up.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request
	}
	c.SetReadLimit(proto.MaxMessageSize)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Messages to the box go through a queue and one writer, so the hub
	// never waits for a box's socket while holding its lock: a box too slow
	// to take its messages is hung up on instead.
	out := make(chan []byte, 64)
	s := &Session{
		Send: func(m proto.Message) error {
			b, err := json.Marshal(&m)
			if err != nil {
				return fmt.Errorf("peer: encode %s: %w", m.Type, err)
			}
			select {
			case out <- b:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("peer: session closed: %w", ctx.Err())
			default:
				cancel()
				return fmt.Errorf("%w: the box does not read its messages", proto.ErrOffline)
			}
		},
		Close: cancel,
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-out:
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				err := c.Write(wctx, websocket.MessageText, b)
				wcancel()
				if err != nil {
					cancel()
					return
				}
			}
		}
	}()
	defer c.CloseNow()

	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	_, b, err := c.Read(hctx)
	hcancel()
	if err != nil {
		return
	}
	hello, err := proto.ParseMessage(b)
	var welcome proto.Message
	if err == nil {
		welcome, err = h.Register(s, &hello)
	}
	if err != nil {
		h.cfg.Log.Warn("registration refused", "remote", r.RemoteAddr, "err", err)
		writeLast(c, errorMessage(proto.TypeHello, err))
		c.Close(websocket.StatusPolicyViolation, "registration refused")
		return
	}
	defer h.Unregister(s)
	h.cfg.Log.Info("box registered", "box", s.Box, "name", hello.Name, "remote", r.RemoteAddr, "peers", len(welcome.Peers))
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			h.cfg.Log.Info("box disconnected", "box", s.Box, "err", err)
			return
		}
		m, err := proto.ParseMessage(b)
		if err == nil {
			err = h.Handle(s, &m)
		}
		if err != nil {
			if errors.Is(err, errTooManyTries) {
				writeLast(c, errorMessage(m.Type, err))
				c.Close(websocket.StatusPolicyViolation, "too many wrong codes")
				return
			}
			_ = s.Send(errorMessage(m.Type, err))
		}
	}
}

// writeLast writes a final message directly (not through the queue), so it
// is on the wire before the connection closes.
func writeLast(c *websocket.Conn, m proto.Message) {
	b, err := json.Marshal(&m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, b)
}

// Stats is what /v1/stats reports.
type Stats struct {
	BoxesOnline  int    `json:"boxes_online"`
	Boxes        int    `json:"boxes"`
	Pairs        int    `json:"pairs"`
	RelayedBytes uint64 `json:"relayed_bytes"` // filled in by the TURN server's owner
	Allocations  int    `json:"allocations"`
}

// Stats counts boxes and pairs.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ps := range h.state.Pairs {
		n += len(ps)
	}
	return Stats{BoxesOnline: len(h.sessions), Boxes: len(h.state.Boxes), Pairs: n / 2}
}
