package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/peer/hub/cluster"
	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// Config configures a Hub.
type Config struct {
	// Store holds the hub's state: identities, pairs, pending codes,
	// registration nonces, limits (package store: SQLite or PostgreSQL).
	// Nil: an in-memory SQLite database, so nothing survives a restart.
	Store store.Store
	// ImportJSON names the JSON state file of hubs before the store
	// (data/hub.json). When it exists it is imported into Store, record by
	// record, and renamed to ImportJSON+".imported", so it is read once.
	ImportJSON string
	// Cluster is the NATS URL (nats://host:4222) that joins this hub to
	// other instances sharing the same Store (PostgreSQL): a box may then
	// connect to any instance. "": this process works alone.
	Cluster string
	// Instance names this instance in the cluster (default: random).
	Instance string
	// STUNURLs and TURNURLs are handed to boxes in the welcome, e.g.
	// "stun:hub.example:3478" and "turn:hub.example:3478?transport=udp".
	// Several TURN URLs (a coturn fleet sharing TURNSecret) are all handed
	// out; the box's ICE agent tries each.
	STUNURLs, TURNURLs []string
	// TURNSecret signs the TURN REST credentials (coturn's static-auth-secret).
	TURNSecret string
	// CredentialTTL is how long TURN credentials stay valid (default 1 h;
	// a box asks for fresh ones when half of that has passed). Only boxes
	// with a pairing get TURN credentials at all.
	CredentialTTL time.Duration
	// ClockSkew bounds |hub clock - hello timestamp| (default 60 s). Nonces
	// are remembered for twice as long, which is what makes a replay fail.
	ClockSkew time.Duration
	// PairCodeTTL is how long a pairing code is valid, and how long the
	// two owners then have to confirm the pairing (default 5 min).
	PairCodeTTL time.Duration
	// Limits bound what strangers can make the hub do (pairing guesses,
	// codes, new identities, publications); the counters live in the
	// store, so a cluster's instances share them.
	Limits Limits
	// DrainPeriod spreads the disconnections of Drain, so the boxes do not
	// all reconnect to the other instances at the same instant (default 5 s).
	DrainPeriod time.Duration
	// PublicIPs are announced as the hub's WebRTC host candidates to
	// phones on its fan-out relay (a cloud machine behind 1:1 NAT);
	// none: its interfaces' addresses.
	PublicIPs []string
	Now       func() time.Time
	Log       *slog.Logger
}

func (c *Config) defaults() {
	c.Limits.defaults()
	if c.CredentialTTL == 0 {
		c.CredentialTTL = time.Hour
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 60 * time.Second
	}
	if c.PairCodeTTL == 0 {
		c.PairCodeTTL = 5 * time.Minute
	}
	if c.DrainPeriod == 0 {
		c.DrainPeriod = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// storeTimeout bounds one store call: a store that does not answer makes a
// registration fail (the box retries) instead of piling up connections.
const storeTimeout = 5 * time.Second

// Hub is the rendezvous server: registration, pairing and signalling
// between paired boxes. It never handles media (see TURNServer for the relay).
//
// The state lives in a store.Store; the hub's memory holds only the boxes
// connected to this instance. With Config.Cluster, instances reach each
// other's boxes through NATS (see link.go).
type Hub struct {
	cfg       Config
	store     store.Store
	ownStore  bool // opened by New: closed by Close
	cluster   *cluster.Cluster
	metrics   *metrics
	draining  atomic.Bool
	stop      chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*Session // box ID -> its live connection on this instance
	tries    map[*Session]int    // wrong pairing codes per connection

	checked, rejected, matched atomic.Int64 // pairing joins on this instance (PairingStats)

	phones phoneWaits // phone offers waiting for their box's answer (phone.go)
	// fanout is the S7 fan-out relay (NewFanoutRelay), which also serves
	// phones away from home when their box moves them there.
	fanout *FanoutRelay
}

// Session is one box's authenticated connection. Send delivers a message to
// the box; Close hangs up. The WebSocket server makes them; tests make their own.
type Session struct {
	Box string
	// Addr is the source address the per-address limits count under
	// (AddrKey of the connection's remote address).
	Addr  string
	Send  func(proto.Message) error
	Close func()
	// drain hangs up telling the box to reconnect (to another instance);
	// nil: Close.
	drain func()

	// Guarded by Hub.mu.
	key     []byte
	name    string
	peers   map[string]bool // the boxes paired with this one
	touched time.Time       // LastSeen last written (a box online for days is not "unseen")
}

// New opens the hub on its store (importing a JSON state file if
// configured), joins the cluster if configured, and returns the hub.
func New(cfg Config) (*Hub, error) {
	cfg.defaults()
	h := &Hub{
		cfg:      cfg,
		store:    cfg.Store,
		stop:     make(chan struct{}),
		sessions: map[string]*Session{},
		tries:    map[*Session]int{},
	}
	h.metrics = newMetrics(h)
	if h.store == nil {
		st, err := store.Open(context.Background(), "sqlite::memory:")
		if err != nil {
			return nil, err
		}
		h.store, h.ownStore = st, true
	}
	h.store = store.Timed(h.store, h.metrics.observeStore)
	if cfg.ImportJSON != "" {
		if err := h.importJSON(cfg.ImportJSON); err != nil {
			h.closeStore()
			return nil, err
		}
	}
	if cfg.Cluster != "" {
		c, err := cluster.Connect(cluster.Config{
			URL: cfg.Cluster, Instance: cfg.Instance, Log: cfg.Log,
			Deliver: h.deliver, Gone: h.gone, Announce: h.reannounce,
		})
		if err != nil {
			h.closeStore()
			return nil, err
		}
		h.cluster = c
	}
	h.bg.Add(1)
	go h.sweep()
	return h, nil
}

func (h *Hub) closeStore() {
	if h.ownStore {
		_ = h.store.Close()
	}
}

// Close leaves the cluster, stops the hub's background work and closes a
// store New opened itself. Connected boxes are not hung up on: see Drain.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		close(h.stop)
		h.bg.Wait()
		if h.cluster != nil {
			_ = h.cluster.Close()
		}
		h.closeStore()
	})
	return nil
}

// sweep deletes expired codes, nonces and counters now and then.
func (h *Hub) sweep() {
	defer h.bg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			if err := h.store.Sweep(ctx, h.cfg.Now()); err != nil {
				h.cfg.Log.Warn("hub store sweep", "err", err)
			}
			cancel()
			h.expireUnpaired()
		}
	}
}

// expireUnpaired forgets the boxes that never paired and have not
// registered for Limits.UnpairedTTL. The boxes connected here are touched
// first (once a day), so a long connection does not count as unseen.
func (h *Hub) expireUnpaired() {
	now := h.cfg.Now()
	h.mu.Lock()
	var touch []store.Box
	for _, s := range h.sessions {
		if now.Sub(s.touched) > 24*time.Hour {
			s.touched = now
			touch = append(touch, store.Box{ID: s.Box, Key: s.key, Name: s.name, LastSeen: now.UTC()})
		}
	}
	h.mu.Unlock()
	ctx, cancel := storeCtx()
	defer cancel()
	for _, b := range touch {
		if err := h.store.PutBox(ctx, b); err != nil {
			h.cfg.Log.Warn("hub store", "err", err)
		}
	}
	n, err := h.store.ExpireUnpaired(ctx, now.Add(-h.cfg.Limits.UnpairedTTL))
	if err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
	}
	if n > 0 {
		h.cfg.Log.Info("forgot boxes that never paired", "boxes", n, "unseen_for", h.cfg.Limits.UnpairedTTL)
	}
}

func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// VerifyHello checks a registration: the ID belongs to the key, the
// signature is the key's, the timestamp is recent and the nonce unused. A
// nonce is remembered only once the rest has verified, so a forger cannot
// burn a real box's nonces. Nonces live in the store, so a hello replayed
// to another instance of a cluster fails too.
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
	ctx, cancel := storeCtx()
	defer cancel()
	fresh, err := h.store.UseNonce(ctx, m.Box, m.Nonce, now, now.Add(2*h.cfg.ClockSkew))
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: nonce already used by %s", proto.ErrReplay, m.Box)
	}
	return nil
}

// errDraining refuses registrations while the instance drains.
var errDraining = errors.New("hub: this instance is shutting down, connect to another")

// Register verifies hello, attaches s as the box's connection (a newer
// connection replaces an older one, on this instance or another) and sends
// the box its welcome, which it also returns.
func (h *Hub) Register(s *Session, hello *proto.Message) (proto.Message, error) {
	if h.draining.Load() {
		return proto.Message{}, errDraining
	}
	if err := h.VerifyHello(hello); err != nil {
		h.metrics.refused.Inc()
		return proto.Message{}, err
	}
	ctx, cancel := storeCtx()
	defer cancel()
	box := hello.Box
	now := h.cfg.Now()
	if _, err := h.store.GetBox(ctx, box); errors.Is(err, store.ErrNotFound) {
		if err := h.limit(ctx, "newbox:"+s.Addr, h.cfg.Limits.AddrNewBoxes, h.cfg.Limits.AddrNewBoxWindow); err != nil {
			h.metrics.refused.Inc()
			return proto.Message{}, fmt.Errorf("%w: too many new boxes from %s; try again later", err, s.Addr)
		}
	} else if err != nil {
		return proto.Message{}, err
	}
	if err := h.store.PutBox(ctx, store.Box{ID: box, Key: hello.Key, Name: hello.Name, LastSeen: now.UTC()}); err != nil {
		return proto.Message{}, err
	}
	peers, err := h.store.Peers(ctx, box)
	if err != nil {
		return proto.Message{}, err
	}
	// Which peers are connected to other instances: asked before taking
	// the lock (a round trip through NATS each).
	remote := h.remoteOnline(ctx, peers)

	h.mu.Lock()
	s.Box, s.key, s.name, s.touched = box, hello.Key, hello.Name, now
	s.peers = make(map[string]bool, len(peers))
	infos := make([]proto.PeerInfo, 0, len(peers))
	for _, p := range peers {
		s.peers[p.ID] = true
		infos = append(infos, proto.PeerInfo{ID: p.ID, Key: p.Key, Name: p.Name, Online: h.sessions[p.ID] != nil || remote[p.ID]})
	}
	if old := h.sessions[box]; old != nil && old != s && old.Close != nil {
		old.Close()
	}
	h.sessions[box] = s
	w := proto.Message{Type: proto.TypeWelcome, Box: box, ICE: h.iceServers(box, len(peers) > 0), Peers: infos}
	// The welcome goes out under the lock, before anyone learns that this
	// box is online: the first message a box reads is always its welcome,
	// never a signal from a peer that was quicker.
	if err := s.Send(w); err != nil {
		delete(h.sessions, box)
		h.mu.Unlock()
		return proto.Message{}, fmt.Errorf("peer: welcome %s: %w", box, err)
	}
	h.presenceLocked(s, true)
	h.mu.Unlock()
	h.announce(s, peers, true)
	h.metrics.registrations.Inc()
	return w, nil
}

// Unregister detaches s if it is still its box's connection.
func (h *Hub) Unregister(s *Session) {
	h.mu.Lock()
	current := h.sessions[s.Box] == s
	var peers []store.Box
	if current {
		delete(h.sessions, s.Box)
		h.presenceLocked(s, false)
		for id := range s.peers {
			peers = append(peers, store.Box{ID: id})
		}
	}
	delete(h.tries, s)
	h.mu.Unlock()
	if !current {
		return // replaced by a newer connection, here or on another instance
	}
	h.announce(s, peers, false)
	ctx, cancel := storeCtx()
	defer cancel()
	if err := h.store.CancelButton(ctx, s.Box); err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
	}
}

// iceServers are box's STUN servers and, if it has a pairing, TURN
// credentials: the relay is for calls, and only paired boxes call.
func (h *Hub) iceServers(box string, paired bool) []proto.ICEServer {
	var out []proto.ICEServer
	if len(h.cfg.STUNURLs) > 0 {
		out = append(out, proto.ICEServer{URLs: h.cfg.STUNURLs})
	}
	if len(h.cfg.TURNURLs) > 0 && h.cfg.TURNSecret != "" && paired {
		u, p := TURNCredentials(h.cfg.TURNSecret, box, h.cfg.Now().Add(h.cfg.CredentialTTL))
		out = append(out, proto.ICEServer{URLs: h.cfg.TURNURLs, Username: u, Credential: p})
		h.metrics.turnCredentials.Inc()
	}
	return out
}

// presenceLocked tells s's paired peers connected to this instance that it
// came or went, so a box waiting to call it can go ahead.
func (h *Hub) presenceLocked(s *Session, online bool) {
	for id := range s.peers {
		if p := h.sessions[id]; p != nil {
			_ = p.Send(proto.Message{Type: proto.TypePresence, Peers: []proto.PeerInfo{{ID: s.Box, Key: s.key, Name: s.name, Online: online}}})
		}
	}
}

// pair records a pair and tells both boxes, wherever they are connected.
func (h *Hub) pair(a, b string) error {
	if a == b {
		return nil
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if _, err := h.store.AddPair(ctx, a, b, h.cfg.Now().UTC()); err != nil {
		return err
	}
	ra, err := h.store.GetBox(ctx, a)
	if err != nil {
		return err
	}
	rb, err := h.store.GetBox(ctx, b)
	if err != nil {
		return err
	}
	h.cfg.Log.Info("paired", "a", a, "b", b)
	h.mu.Lock()
	local := map[string]bool{a: h.sessions[a] != nil, b: h.sessions[b] != nil}
	h.mu.Unlock()
	online := map[string]bool{a: local[a], b: local[b]}
	for _, x := range []string{a, b} {
		if !online[x] {
			online[x] = h.remoteOnline(ctx, []store.Box{{ID: x}})[x]
		}
	}
	recs := map[string]store.Box{a: ra, b: rb}
	h.mu.Lock()
	for _, x := range [][2]string{{a, b}, {b, a}} {
		r := recs[x[1]]
		// It carries the box's ICE servers: with a pairing, TURN too.
		msg := proto.Message{Type: proto.TypePaired, ICE: h.iceServers(x[0], true), Peers: []proto.PeerInfo{{ID: r.ID, Key: r.Key, Name: r.Name, Online: online[x[1]]}}}
		if s := h.sessions[x[0]]; s != nil {
			s.peers[x[1]] = true
			// Sent under the lock so that "paired" is ordered before any
			// signal the other box sends once it knows the pair.
			_ = s.Send(msg)
		}
	}
	h.mu.Unlock()
	for _, x := range [][2]string{{a, b}, {b, a}} {
		if !local[x[0]] {
			r := recs[x[1]]
			h.notifyPaired(x[0], proto.PeerInfo{ID: r.ID, Key: r.Key, Name: r.Name, Online: online[x[1]]}, local[x[1]])
		}
	}
	return nil
}

// forget deletes s's box (a factory reset): its record, pairs and pending
// code go from the store, so a credential it signed for a phone no longer
// verifies here, and its paired boxes are told, here or on the instance
// that holds them, so that they drop it from their peers.
func (h *Hub) forget(s *Session) error {
	ctx, cancel := storeCtx()
	defer cancel()
	peers, err := h.store.Peers(ctx, s.Box)
	if err != nil {
		return err
	}
	if err := h.store.DeleteBox(ctx, s.Box); err != nil {
		return err
	}
	h.cfg.Log.Info("box forgot itself (factory reset)", "box", s.Box, "peers", len(peers))
	gone := proto.PeerInfo{ID: s.Box, Key: s.key, Name: s.name}
	msg := proto.Message{Type: proto.TypeUnpaired, Peers: []proto.PeerInfo{gone}}
	var elsewhere []string
	h.mu.Lock()
	s.peers = map[string]bool{}
	for _, p := range peers {
		if ps := h.sessions[p.ID]; ps != nil {
			delete(ps.peers, s.Box)
			_ = ps.Send(msg)
		} else {
			elsewhere = append(elsewhere, p.ID)
		}
	}
	h.mu.Unlock()
	h.notifyUnpaired(elsewhere, gone)
	return nil
}

// HasPairing reports whether box is paired with at least one box.
func (h *Hub) HasPairing(box string) bool {
	ctx, cancel := storeCtx()
	defer cancel()
	peers, err := h.store.Peers(ctx, box)
	if err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
	}
	return len(peers) > 0
}

// Paired reports whether a and b are paired.
func (h *Hub) Paired(a, b string) bool {
	ctx, cancel := storeCtx()
	defer cancel()
	ok, err := h.store.Paired(ctx, a, b)
	if err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
	}
	return ok
}

// isPaired answers from the session's cache of its pairs, asking the store
// only for a box it does not know (a pair made on another instance whose
// notice has not arrived yet).
func (h *Hub) isPaired(s *Session, other string) (bool, error) {
	h.mu.Lock()
	ok := s.peers[other]
	h.mu.Unlock()
	if ok {
		return true, nil
	}
	ctx, cancel := storeCtx()
	defer cancel()
	ok, err := h.store.Paired(ctx, s.Box, other)
	if err != nil || !ok {
		return false, err
	}
	h.mu.Lock()
	if s.peers != nil {
		s.peers[other] = true
	}
	h.mu.Unlock()
	return true, nil
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
	case proto.TypeICE:
		h.mu.Lock()
		paired := len(s.peers) > 0
		h.mu.Unlock()
		if !paired {
			paired = h.HasPairing(s.Box) // a pair made on another instance
		}
		return s.Send(proto.Message{Type: proto.TypeICE, ICE: h.iceServers(s.Box, paired)})
	case proto.TypePairCode:
		return h.pairCode(s, now)
	case proto.TypePairJoin:
		return h.pairJoin(s, m, now)
	case proto.TypePairNonce, proto.TypePairReveal, proto.TypePairConfirm, proto.TypePairCancel:
		return h.pairStep(s, m, now)
	case proto.TypePhoneAnswer:
		h.phoneAnswered(s.Box, m)
		return nil
	case proto.TypeForget:
		if err := h.forget(s); err != nil {
			return err
		}
		return s.Send(proto.Message{Type: proto.TypeForget})
	case proto.TypePairButton:
		return fmt.Errorf("%w: pairing by button presses is withdrawn (it paired any two boxes pressing at once, anywhere): pair with a code", proto.ErrBadMessage)
	case proto.TypeSignal:
		paired, err := h.isPaired(s, m.To)
		if err != nil {
			return err
		}
		if !paired {
			return fmt.Errorf("%w: %s and %s", proto.ErrNotPaired, s.Box, m.To)
		}
		fwd := *m
		fwd.From = s.Box // never trust a box's own From
		h.mu.Lock()
		dst := h.sessions[m.To]
		h.mu.Unlock()
		if dst == nil {
			if err := h.signalRemote(m.To, &fwd); err != nil {
				h.metrics.signalsFailed.Inc()
				return err
			}
			h.metrics.signals.WithLabelValues("cluster").Inc()
			return nil
		}
		if err := dst.Send(fwd); err != nil {
			h.metrics.signalsFailed.Inc()
			return fmt.Errorf("%w: %s: %w", proto.ErrOffline, m.To, err)
		}
		h.metrics.signals.WithLabelValues("local").Inc()
		return nil
	}
	return fmt.Errorf("%w: a box may not send %q", proto.ErrBadMessage, m.Type)
}

// Stats is what /v1/stats reports.
type Stats struct {
	BoxesOnline  int    `json:"boxes_online"`
	Boxes        int    `json:"boxes"`
	Pairs        int    `json:"pairs"`
	RelayedBytes uint64 `json:"relayed_bytes"` // filled in by the TURN server's owner
	Allocations  int    `json:"allocations"`
}

// Stats counts boxes and pairs (in the store: all instances) and the
// boxes connected to this instance.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	online := len(h.sessions)
	h.mu.Unlock()
	ctx, cancel := storeCtx()
	defer cancel()
	boxes, pairs, err := h.store.Counts(ctx)
	if err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
	}
	return Stats{BoxesOnline: online, Boxes: boxes, Pairs: pairs}
}
