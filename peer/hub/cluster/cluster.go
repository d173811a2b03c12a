// Package cluster connects hub instances through NATS, so boxes may connect
// to any instance behind a load balancer and still reach each other.
//
// Every instance subscribes to one subject per box connected to it,
// PREFIX.box.<boxID>, and to its own, PREFIX.inst.<instance> (answers
// addressed to this instance, e.g. a box's answer to a phone waiting here). A message for a box on another instance is published
// to that subject: a signal as a request (the answer says it was handed to
// the box; "no responders" means the box is on no instance: offline), a
// presence or pairing notice as a plain publish. Nothing is stored in NATS:
// the hub's store (PostgreSQL) holds identities and pairs, NATS only knows
// who is connected where, through the subscriptions themselves.
//
// Presence of a box on another instance dies with that instance: every
// instance publishes a heartbeat on PREFIX.hb; an instance that misses
// DeadAfter's worth of them (or says goodbye on PREFIX.bye when it drains)
// is dead, and the boxes this instance had learned were on it are reported
// gone through Config.Gone.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Kinds of Msg.
const (
	KindSignal   = "signal"   // Body: a message for the box (request: the answer says whether it was delivered)
	KindPresence = "presence" // Box came online (Online) or went away, on Instance
	KindPaired   = "paired"   // Body: the pairing notice for the box
	KindUnpaired = "unpaired" // Body: the box (PeerInfo) that forgot the receiver (a factory reset)
	KindKick     = "kick"     // Box registered again on Instance: other instances drop their connection
	KindOnline   = "online"   // request: is the box connected to you?
	// KindPhone: Body is a phone_offer or phone_bye for the box (request:
	// the answer says it was handed to the box). The box's phone_answer
	// goes back with Tell to the instance that asked (Msg.Instance).
	KindPhone = "phone"
	// KindPhoneAnswer: Body is a box's phone_answer, told to the instance
	// whose phone waits for it (Box names the box).
	KindPhoneAnswer = "phone_answer"
)

// Msg travels between instances about one box.
type Msg struct {
	Kind     string          `json:"kind"`
	Instance string          `json:"instance"`         // the sender
	Box      string          `json:"box,omitempty"`    // the box the news is about (presence, paired)
	Online   bool            `json:"online,omitempty"` // presence
	Body     json.RawMessage `json:"body,omitempty"`   // the hub's own message, passed through
	Err      string          `json:"err,omitempty"`    // in answers: why it was not delivered
}

// ErrOffline: no instance has the box connected.
var ErrOffline = errors.New("cluster: box not connected to any hub instance")

// Config configures a Cluster.
type Config struct {
	URL      string // nats://host:4222[,nats://...]
	Instance string // unique name of this instance (default: random)
	Prefix   string // subject prefix (default "callbox"): several hub fleets may share one NATS
	// Deliver hands a message to the local box it is addressed to. An
	// error (e.g. the box is no longer here) is returned to a requester.
	Deliver func(to string, m Msg) error
	// Gone hears that box, which Track had placed on a now dead instance,
	// is offline.
	Gone func(box string)
	// Announce asks the hub to tell the other instances again which boxes
	// it has (on its own goroutine): after this instance's NATS connection
	// came back (the others may have declared it dead meanwhile), and when
	// an instance it had declared dead (or never heard of) speaks: that one
	// may have declared this one dead too.
	Announce func()
	// Heartbeat is how often this instance says it is alive (default 1 s);
	// DeadAfter is how long an instance may stay silent (default 3 s).
	Heartbeat, DeadAfter time.Duration
	// RequestTimeout bounds a signal or presence question (default 5 s: on
	// a loaded machine a round trip through NATS has taken over 2 s).
	RequestTimeout time.Duration
	Log            *slog.Logger
}

// Cluster is one instance's membership in the cluster.
type Cluster struct {
	cfg Config
	nc  *nats.Conn
	in  chan *nats.Msg

	mu       sync.Mutex
	subs     map[string]*nats.Subscription // local box -> its subject
	where    map[string]string             // remote box -> instance it is on (boxes we care about)
	lastBeat map[string]time.Time          // instance -> last heartbeat
	closed   bool

	stop chan struct{}
	done sync.WaitGroup
}

// Connect joins the cluster.
func Connect(cfg Config) (*Cluster, error) {
	if cfg.Deliver == nil {
		return nil, fmt.Errorf("cluster: Config.Deliver is required")
	}
	if cfg.Instance == "" {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("cluster: instance name: %w", err)
		}
		cfg.Instance = "hub-" + hex.EncodeToString(b)
	}
	if !validInstance(cfg.Instance) {
		// It is a NATS subject token (PREFIX.inst.<instance>).
		return nil, fmt.Errorf("cluster: instance name %q: want 1-64 letters, digits, - and _", cfg.Instance)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "callbox"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = 3 * cfg.Heartbeat
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Gone == nil {
		cfg.Gone = func(string) {}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Cluster{
		cfg:      cfg,
		in:       make(chan *nats.Msg, 1<<16),
		subs:     map[string]*nats.Subscription{},
		where:    map[string]string{},
		lastBeat: map[string]time.Time{},
		stop:     make(chan struct{}),
	}
	nc, err := nats.Connect(cfg.URL,
		nats.Name(cfg.Instance),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// Subscriptions are replayed by nats.go on reconnect, so the boxes
		// stay reachable across a NATS restart.
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			cfg.Log.Warn("nats", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				cfg.Log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			cfg.Log.Info("nats reconnected")
			if cfg.Announce != nil {
				go cfg.Announce()
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect %s: %w", cfg.URL, err)
	}
	c.nc = nc
	// All box subjects feed one channel read by one goroutine: no goroutine
	// per box (50,000 boxes), and the messages for one box stay in order
	// (an offer before its candidates).
	if _, err := nc.ChanSubscribe(c.subject("hb"), c.in); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if _, err := nc.ChanSubscribe(c.subject("bye"), c.in); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if _, err := nc.ChanSubscribe(c.instSubject(cfg.Instance), c.in); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.done.Add(2)
	go c.dispatch()
	go c.beat()
	return c, nil
}

// validInstance: an instance name is one NATS subject token.
func validInstance(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Instance is this instance's name.
func (c *Cluster) Instance() string { return c.cfg.Instance }

func (c *Cluster) subject(parts string) string { return c.cfg.Prefix + "." + parts }

func (c *Cluster) boxSubject(box string) string { return c.cfg.Prefix + ".box." + box }

func (c *Cluster) instSubject(inst string) string { return c.cfg.Prefix + ".inst." + inst }

// Tell publishes m to one instance (by name), about box m.Box: nothing
// happens if that instance is gone.
func (c *Cluster) Tell(instance string, m Msg) error {
	if instance == "" {
		return fmt.Errorf("cluster: tell %s: no instance", m.Kind)
	}
	m.Instance = c.cfg.Instance
	b, err := json.Marshal(&m)
	if err != nil {
		return fmt.Errorf("cluster: encode %s: %w", m.Kind, err)
	}
	if err := c.nc.Publish(c.instSubject(instance), b); err != nil {
		return fmt.Errorf("cluster: tell %s to %s: %w", m.Kind, instance, err)
	}
	return nil
}

// Attach makes this instance the one that receives messages for box, and
// tells any other instance that still has box to drop it.
func (c *Cluster) Attach(box string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cluster: closed")
	}
	if _, ok := c.subs[box]; ok {
		return nil
	}
	// The kick goes out before the subscription, so this instance does not
	// hear its own kick.
	if err := c.publish(box, Msg{Kind: KindKick}); err != nil {
		return err
	}
	sub, err := c.nc.ChanSubscribe(c.boxSubject(box), c.in)
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", box, err)
	}
	// The server takes the subscription asynchronously: without this round
	// trip, a request another instance sends right after the box registered
	// finds no responder (TestSignalReachesTheInstanceHoldingTheBox failed
	// 2 runs in 5).
	if err := c.nc.FlushTimeout(2 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("cluster: subscribe %s: %w", box, err)
	}
	c.subs[box] = sub
	delete(c.where, box)
	return nil
}

// Detach stops receiving messages for box.
func (c *Cluster) Detach(box string) {
	c.mu.Lock()
	sub := c.subs[box]
	delete(c.subs, box)
	c.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// Attached is how many boxes this instance holds.
func (c *Cluster) Attached() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

func (c *Cluster) publish(box string, m Msg) error {
	m.Instance = c.cfg.Instance
	b, err := json.Marshal(&m)
	if err != nil {
		return fmt.Errorf("cluster: encode %s: %w", m.Kind, err)
	}
	if err := c.nc.Publish(c.boxSubject(box), b); err != nil {
		return fmt.Errorf("cluster: publish %s to %s: %w", m.Kind, box, err)
	}
	return nil
}

// Notify publishes m for box, wherever it is; nothing happens if it is
// nowhere.
func (c *Cluster) Notify(box string, m Msg) error { return c.publish(box, m) }

// Request sends m to the instance holding box and waits for its answer:
// ErrOffline when no instance holds it, the remote error if it could not
// hand it over. It returns the instance that answered.
func (c *Cluster) Request(ctx context.Context, box string, m Msg) (string, error) {
	m.Instance = c.cfg.Instance
	b, err := json.Marshal(&m)
	if err != nil {
		return "", fmt.Errorf("cluster: encode %s: %w", m.Kind, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	r, err := c.nc.RequestWithContext(ctx, c.boxSubject(box), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return "", fmt.Errorf("%w: %s", ErrOffline, box)
	}
	if err != nil {
		return "", fmt.Errorf("cluster: %s to %s: %w", m.Kind, box, err)
	}
	var ans Msg
	if err := json.Unmarshal(r.Data, &ans); err != nil {
		return "", fmt.Errorf("cluster: answer from %s: %w", box, err)
	}
	if ans.Err != "" {
		return ans.Instance, fmt.Errorf("%w: %s: %s", ErrOffline, box, ans.Err)
	}
	return ans.Instance, nil
}

// Where asks the cluster which instance holds box: "" and ErrOffline if none.
func (c *Cluster) Where(ctx context.Context, box string) (string, error) {
	return c.Request(ctx, box, Msg{Kind: KindOnline})
}

// Track notes that box is on instance, so that the box is reported Gone
// if that instance dies.
func (c *Cluster) Track(box, instance string) {
	if instance == c.cfg.Instance {
		return
	}
	c.mu.Lock()
	c.where[box] = instance
	if _, ok := c.lastBeat[instance]; !ok {
		c.lastBeat[instance] = time.Now() // first news of it: it is alive now
	}
	c.mu.Unlock()
}

// Untrack forgets box if it was last seen on instance, and reports whether
// it was: an "offline" from an instance the box has already left is stale.
func (c *Cluster) Untrack(box, instance string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.where[box]; ok && cur != instance {
		return false
	}
	delete(c.where, box)
	return true
}

// dispatch handles every message for this instance, in arrival order.
func (c *Cluster) dispatch() {
	defer c.done.Done()
	for {
		select {
		case <-c.stop:
			return
		case m := <-c.in:
			c.handle(m)
		}
	}
}

type beat struct {
	Instance string `json:"instance"`
}

func (c *Cluster) handle(nm *nats.Msg) {
	switch nm.Subject {
	case c.subject("hb"), c.subject("bye"):
		var b beat
		if json.Unmarshal(nm.Data, &b) != nil || b.Instance == "" || b.Instance == c.cfg.Instance {
			return
		}
		if nm.Subject == c.subject("bye") {
			c.instanceDied(b.Instance)
			return
		}
		c.mu.Lock()
		_, known := c.lastBeat[b.Instance]
		c.lastBeat[b.Instance] = time.Now()
		c.mu.Unlock()
		if !known && c.cfg.Announce != nil {
			go c.cfg.Announce()
		}
		return
	}
	if nm.Subject == c.instSubject(c.cfg.Instance) {
		// Told to this instance: about box m.Box, no answer expected.
		var m Msg
		if err := json.Unmarshal(nm.Data, &m); err != nil {
			c.cfg.Log.Warn("cluster: bad message", "subject", nm.Subject, "err", err)
			return
		}
		if err := c.cfg.Deliver(m.Box, m); err != nil {
			c.cfg.Log.Debug("cluster: told", "kind", m.Kind, "box", m.Box, "err", err)
		}
		return
	}
	const boxPrefix = ".box."
	box := nm.Subject[len(c.cfg.Prefix)+len(boxPrefix):]
	var m Msg
	if err := json.Unmarshal(nm.Data, &m); err != nil {
		c.cfg.Log.Warn("cluster: bad message", "subject", nm.Subject, "err", err)
		return
	}
	if m.Instance == c.cfg.Instance && m.Kind == KindKick {
		return
	}
	if m.Kind == KindKick {
		// The box registered elsewhere: drop our subscription now, so
		// that the new instance alone answers for it.
		c.Detach(box)
	}
	err := c.cfg.Deliver(box, m)
	if nm.Reply == "" {
		return
	}
	ans := Msg{Kind: m.Kind, Instance: c.cfg.Instance}
	if err != nil {
		ans.Err = err.Error()
	}
	b, _ := json.Marshal(&ans)
	_ = nm.Respond(b)
}

// beat publishes heartbeats and declares silent instances dead.
func (c *Cluster) beat() {
	defer c.done.Done()
	hb, _ := json.Marshal(beat{Instance: c.cfg.Instance})
	t := time.NewTicker(c.cfg.Heartbeat / 2)
	defer t.Stop()
	last := time.Time{}
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			if now.Sub(last) >= c.cfg.Heartbeat {
				_ = c.nc.Publish(c.subject("hb"), hb)
				last = now
			}
			var dead []string
			c.mu.Lock()
			for inst, at := range c.lastBeat {
				if now.Sub(at) > c.cfg.DeadAfter {
					dead = append(dead, inst)
				}
			}
			c.mu.Unlock()
			for _, inst := range dead {
				c.cfg.Log.Warn("hub instance silent: its boxes are offline", "instance", inst)
				c.instanceDied(inst)
			}
		}
	}
}

// instanceDied reports every box tracked on inst as gone.
func (c *Cluster) instanceDied(inst string) {
	var gone []string
	c.mu.Lock()
	delete(c.lastBeat, inst)
	for box, at := range c.where {
		if at == inst {
			gone = append(gone, box)
			delete(c.where, box)
		}
	}
	c.mu.Unlock()
	for _, box := range gone {
		c.cfg.Gone(box)
	}
}

// Close leaves the cluster: a goodbye first, so the other instances mark
// this one's boxes offline at once instead of after DeadAfter.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	b, _ := json.Marshal(beat{Instance: c.cfg.Instance})
	_ = c.nc.Publish(c.subject("bye"), b)
	_ = c.nc.Flush()
	close(c.stop)
	c.done.Wait()
	c.nc.Close()
	return nil
}

// Connected reports whether the NATS connection is up.
func (c *Cluster) Connected() bool { return c.nc.IsConnected() }
