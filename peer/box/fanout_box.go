package box

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	"github.com/callbox/callbox/relay/viewer"
)

// The box's side of S7: a FanoutSender serves a stream to remote receivers
// (paired boxes that sent KindWatch). While FanoutPolicy says their copies
// fit the uplink, every receiver takes its own copy from the box's relay
// (Direct: the on-device relay, reached directly). When receivers x
// bitrate passes the budget, the box publishes one copy to the hub's relay
// (hub.FanoutRelay) and moves every receiver there with a KindMedia signal
// carrying the relay's URL and token; below the hysteresis band it moves
// them back and stops publishing. A Watcher is the receiver's side: it
// follows the KindMedia signals, connecting to the new location before it
// lets go of the old one, so it keeps getting whole frames in order.

// MediaLocation is the payload of a KindMedia signal (JSON in its SDP
// field, so it is signed by the box like every signal).
type MediaLocation struct {
	Mode string `json:"mode"` // FanoutMode: "direct" or "relay"
	URL  string `json:"url"`  // WebSocket URL of the video stream, token included
}

// FanoutSenderConfig configures a FanoutSender.
type FanoutSenderConfig struct {
	Client   *Client         // the box's hub connection (signalling)
	HubURL   string          // its URL; the publish endpoint is on the same server
	Identity *proto.Identity // signs the publish connection's hello
	// HTTPClient dials the publish connection (nil: http.DefaultClient).
	HTTPClient *http.Client
	Policy     FanoutPolicy
	// Direct is the box's own relay; DirectURL is the WebSocket URL of its
	// video stream as remote receivers reach it, token included.
	Direct    *relay.Relay
	DirectURL string
	// StreamBps is the stream's bitrate; 0 measures it from the bursts
	// published, each Window, averaged over the last few (exponentially).
	StreamBps float64
	// Window is how often the bitrate is measured and the policy asked
	// again (default 1 s).
	Window time.Duration
	// Linger keeps publishing to the hub after the receivers were moved
	// back, while they reconnect (default 2 s).
	Linger time.Duration
	// OnDecision hears every change of mode.
	OnDecision func(FanoutDecision)
	Log        *slog.Logger
}

// FanoutSender switches a box's remote receivers between direct copies
// and one copy through the hub's relay (S7).
type FanoutSender struct {
	cfg    FanoutSenderConfig
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	events chan Signal
	lost   chan struct{} // the publish connection failed
	remove func()

	mu        sync.Mutex
	receivers map[string]string // box ID -> the call ID of its watch
	mode      FanoutMode
	pub       *FanoutPublisher
	hubBytes  uint64 // published by earlier publish connections
	winBytes  int
	bps       float64
	last      FanoutDecision
	switches  int
}

// NewFanoutSender starts taking watch signals through cfg.Client.
func NewFanoutSender(cfg FanoutSenderConfig) (*FanoutSender, error) {
	if cfg.Client == nil || cfg.Identity == nil || cfg.Direct == nil || cfg.DirectURL == "" || cfg.HubURL == "" {
		return nil, fmt.Errorf("peer: fan-out sender needs a client, identity, hub URL and direct relay")
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &FanoutSender{cfg: cfg, done: make(chan struct{}), events: make(chan Signal, 64), lost: make(chan struct{}, 1), receivers: map[string]string{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.remove = cfg.Client.onFanoutSignal(func(sig Signal) {
		if sig.Kind != proto.KindWatch && sig.Kind != proto.KindUnwatch {
			return
		}
		select {
		case s.events <- sig:
		default:
			cfg.Log.Warn("fan-out: watch signal dropped (queue full)", "from", sig.From)
		}
	})
	go s.run()
	return s, nil
}

// Publish sends one burst to the receivers: into the direct relay (which
// copies it to each receiver connected there) and, in relay mode, one copy
// to the hub. It blocks while the hub connection takes the burst. A failed
// publish connection is dropped (the sender publishes again, or moves the
// receivers back to direct copies); only ctx's end is returned.
func (s *FanoutSender) Publish(ctx context.Context, b capture.Burst) error {
	s.cfg.Direct.Publish(b)
	n := 0
	for _, p := range b.Packets {
		n += len(p)
	}
	s.mu.Lock()
	s.winBytes += n
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return nil
	}
	err := pub.Publish(ctx, b)
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	s.mu.Lock()
	lost := s.pub == pub
	if lost {
		s.pub = nil
		s.hubBytes += pub.BytesSent()
	}
	s.mu.Unlock()
	if lost {
		s.cfg.Log.Warn("fan-out: publish connection to the hub lost", "err", err)
		pub.Close()
		select {
		case s.lost <- struct{}{}:
		default:
		}
	}
	return nil
}

// FanoutStats is what a FanoutSender reports.
type FanoutStats struct {
	Mode      FanoutMode
	Receivers int
	StreamBps float64 // measured (or configured)
	HubBytes  uint64  // uploaded to the hub's relay, all publish connections
	Switches  int
	Decision  FanoutDecision // the latest
}

// Stats reports the mode and the figures behind it.
func (s *FanoutSender) Stats() FanoutStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := FanoutStats{Mode: s.mode, Receivers: len(s.receivers), StreamBps: s.streamBpsLocked(), HubBytes: s.hubBytes, Switches: s.switches, Decision: s.last}
	if s.pub != nil {
		st.HubBytes += s.pub.BytesSent()
	}
	return st
}

func (s *FanoutSender) streamBpsLocked() float64 {
	if s.cfg.StreamBps > 0 {
		return s.cfg.StreamBps
	}
	return s.bps
}

// Close stops the sender and its publication to the hub.
func (s *FanoutSender) Close() error {
	s.remove()
	s.cancel()
	<-s.done
	s.mu.Lock()
	pub := s.pub
	s.pub = nil
	if pub != nil {
		s.hubBytes += pub.BytesSent()
	}
	s.mu.Unlock()
	if pub != nil {
		pub.Close()
	}
	return nil
}

func (s *FanoutSender) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.Window)
	defer tick.Stop()
	winStart := time.Now()
	var linger <-chan time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case sig := <-s.events:
			s.mu.Lock()
			if sig.Kind == proto.KindWatch {
				s.receivers[sig.From] = sig.Call
			} else {
				delete(s.receivers, sig.From)
			}
			s.mu.Unlock()
			if sig.Kind == proto.KindWatch {
				// Tell the new receiver where the stream is now; a switch
				// below tells everyone again.
				s.sendLocation(sig.From, sig.Call, s.location())
			}
		case now := <-tick.C:
			s.mu.Lock()
			// A receiver that left the hub without unwatching (power cut,
			// lost network) no longer counts.
			for id := range s.receivers {
				if !s.cfg.Client.Online(id) {
					delete(s.receivers, id)
				}
			}
			if el := now.Sub(winStart).Seconds(); el > 0 {
				// A window holds a whole number of frames (14-16 of a
				// 15 fps stream in 1 s): average the windows, so a stream
				// near a threshold does not cross it by counting alone.
				sample := float64(s.winBytes*8) / el
				if s.bps == 0 {
					s.bps = sample
				} else {
					s.bps = 0.5*s.bps + 0.5*sample
				}
			}
			s.winBytes, winStart = 0, now
			s.mu.Unlock()
		case <-s.lost:
			// The receivers on the hub's relay have lost the stream: ask
			// the policy again from direct; if it still says relay, that
			// publishes anew (new token) and moves everyone there.
			s.mu.Lock()
			wasRelay := s.mode == FanoutRelay
			s.mode = FanoutDirect
			s.mu.Unlock()
			if mode, _ := s.decide(); mode == FanoutDirect && wasRelay {
				s.moveAll() // back to direct copies rather than nothing
			}
			continue
		case <-linger:
			linger = nil
			s.mu.Lock()
			pub := s.pub
			if s.mode == FanoutDirect {
				s.pub = nil
				if pub != nil {
					s.hubBytes += pub.BytesSent()
				}
			} else {
				pub = nil
			}
			s.mu.Unlock()
			if pub != nil {
				pub.Close()
				s.cfg.Log.Info("fan-out: stopped publishing to the hub")
			}
			continue
		}
		if mode, _ := s.decide(); mode == FanoutRelay {
			linger = nil
		} else if linger == nil && s.hasPub() && s.currentMode() == FanoutDirect {
			linger = time.After(s.cfg.Linger)
		}
	}
}

func (s *FanoutSender) hasPub() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub != nil
}

func (s *FanoutSender) currentMode() FanoutMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// decide asks the policy and switches when it says so; it returns the mode
// in use afterwards and whether it changed.
func (s *FanoutSender) decide() (FanoutMode, bool) {
	s.mu.Lock()
	n, bps, cur := len(s.receivers), s.streamBpsLocked(), s.mode
	s.mu.Unlock()
	d := s.cfg.Policy.Decide(n, bps, cur)
	s.mu.Lock()
	s.last = d
	s.mu.Unlock()
	if d.Mode == cur {
		return cur, false
	}
	if d.Mode == FanoutRelay {
		s.mu.Lock()
		pub := s.pub // still lingering from the last relay period?
		s.mu.Unlock()
		if pub == nil {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			p, err := PublishToHub(ctx, s.cfg.HubURL, s.cfg.Identity, s.cfg.HTTPClient)
			cancel()
			if err != nil {
				s.cfg.Log.Warn("fan-out: cannot publish to the hub; staying direct", "err", err)
				return cur, false
			}
			pub = p
		}
		s.mu.Lock()
		s.pub = pub
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.mode = d.Mode
	s.switches++
	s.mu.Unlock()
	s.cfg.Log.Info("fan-out: switching", "mode", d.Mode, "receivers", n, "stream_kbps", int(bps/1e3), "reason", d.Reason)
	if s.cfg.OnDecision != nil {
		s.cfg.OnDecision(d)
	}
	s.moveAll()
	return d.Mode, true
}

// moveAll tells every receiver where the stream is now.
func (s *FanoutSender) moveAll() {
	s.mu.Lock()
	recv := make(map[string]string, len(s.receivers))
	for id, call := range s.receivers {
		recv[id] = call
	}
	s.mu.Unlock()
	loc := s.location()
	for id, call := range recv {
		s.sendLocation(id, call, loc)
	}
}

// location is where receivers get the stream in the current mode.
func (s *FanoutSender) location() MediaLocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == FanoutRelay && s.pub != nil {
		return MediaLocation{Mode: FanoutRelay.String(), URL: s.pub.ViewerURL(capture.KindVideo)}
	}
	return MediaLocation{Mode: FanoutDirect.String(), URL: s.cfg.DirectURL}
}

func (s *FanoutSender) sendLocation(to, call string, loc MediaLocation) {
	b, err := json.Marshal(loc)
	if err != nil {
		return
	}
	if err := s.cfg.Client.SendSignal(s.ctx, to, call, proto.KindMedia, string(b)); err != nil {
		s.cfg.Log.Warn("fan-out: cannot tell a receiver where the stream is", "to", to, "err", err)
	}
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	Client *Client // the receiving box's hub connection
	Box    string  // ID of the paired box to watch
	// OnFrame hears each whole video frame once, in order, from whichever
	// location delivers it first; the packets are valid only during the
	// call. It runs on the watcher's goroutine.
	OnFrame func(b capture.Burst, from MediaLocation)
	Log     *slog.Logger
}

// Watcher receives a box's stream wherever the box says it is (S7).
type Watcher struct {
	cfg    WatcherConfig
	call   string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	remove func()
	notify chan struct{}

	mu       sync.Mutex
	latest   MediaLocation
	current  MediaLocation
	switches int
}

// Watch asks box cfg.Box for its stream and follows it until Close.
func Watch(ctx context.Context, cfg WatcherConfig) (*Watcher, error) {
	if cfg.Client == nil || cfg.OnFrame == nil {
		return nil, fmt.Errorf("peer: watcher needs a client and OnFrame")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	w := &Watcher{cfg: cfg, call: "watch-" + hex.EncodeToString(id[:]), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.remove = cfg.Client.onFanoutSignal(func(sig Signal) {
		if sig.Kind != proto.KindMedia || sig.From != cfg.Box || sig.Call != w.call {
			return
		}
		var loc MediaLocation
		if err := json.Unmarshal([]byte(sig.SDP), &loc); err != nil || loc.URL == "" {
			cfg.Log.Warn("fan-out: bad media location", "from", sig.From, "err", err)
			return
		}
		w.mu.Lock()
		w.latest = loc
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	})
	if err := cfg.Client.SendSignal(ctx, cfg.Box, w.call, proto.KindWatch, ""); err != nil {
		w.remove()
		w.cancel()
		return nil, err
	}
	go w.run()
	return w, nil
}

// Location is where the watcher takes the stream from now, and how many
// times it has moved.
func (w *Watcher) Location() (MediaLocation, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current, w.switches
}

// Close tells the box to stop and closes the connections.
func (w *Watcher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := w.cfg.Client.SendSignal(ctx, w.cfg.Box, w.call, proto.KindUnwatch, "")
	cancel()
	w.remove()
	w.cancel()
	<-w.done
	return err
}

// wframe is one whole frame read from the connection of generation gen.
type wframe struct {
	gen     int
	ts      uint32
	packets [][]byte
}

type wconn struct {
	v   *viewer.Client
	loc MediaLocation
}

func (w *Watcher) run() {
	defer close(w.done)
	frames := make(chan wframe, 64)
	conns := map[int]*wconn{}
	defer func() {
		for _, c := range conns {
			c.v.Close()
		}
	}()
	gen, active := 0, 0
	var lastTS uint32
	have := false
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.notify:
			w.mu.Lock()
			loc := w.latest
			w.mu.Unlock()
			if c := conns[gen]; c != nil && c.loc.URL == loc.URL {
				continue
			}
			dctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
			v, err := viewer.Dial(dctx, loc.URL, capture.KindVideo, viewer.Options{})
			cancel()
			if err != nil {
				w.cfg.Log.Warn("fan-out: cannot reach the stream", "mode", loc.Mode, "err", err)
				continue
			}
			gen++
			conns[gen] = &wconn{v: v, loc: loc}
			go w.read(gen, v, frames)
		case f := <-frames:
			c := conns[f.gen]
			if c == nil || f.gen < active {
				continue // an older connection, already let go
			}
			newer := !have || int32(f.ts-lastTS) > 0
			if f.gen > active && (newer || f.ts == lastTS) {
				// The new connection has caught up: let go of the older ones.
				active = f.gen
				for g, old := range conns {
					if g < active {
						old.v.Close()
						delete(conns, g)
					}
				}
				w.mu.Lock()
				if w.current.URL != "" {
					w.switches++
				}
				w.current = c.loc
				w.mu.Unlock()
			}
			if !newer {
				continue // already delivered from the other connection
			}
			lastTS, have = f.ts, true
			w.cfg.OnFrame(capture.Burst{Kind: capture.KindVideo, Keyframe: true, Packets: f.packets}, c.loc)
		}
	}
}

// read assembles whole frames (consecutive sequence numbers, one RTP
// timestamp, ending with the marker bit) from one connection.
func (w *Watcher) read(gen int, v *viewer.Client, out chan<- wframe) {
	var cur [][]byte
	var ts uint32
	var seq uint16
	broken := false
	for {
		pkt, err := v.Next(w.ctx)
		if err != nil {
			return
		}
		if len(pkt) < 12 {
			continue
		}
		pts, pseq := binary.BigEndian.Uint32(pkt[4:8]), binary.BigEndian.Uint16(pkt[2:4])
		if len(cur) == 0 || pts != ts {
			cur, ts, broken = cur[:0], pts, false
		} else if pseq != seq+1 {
			broken = true
		}
		seq = pseq
		cur = append(cur, append([]byte(nil), pkt...))
		if pkt[1]&0x80 == 0 {
			continue
		}
		if !broken {
			select {
			case out <- wframe{gen: gen, ts: ts, packets: cur}:
			case <-w.ctx.Done():
				return
			}
		}
		cur = nil
	}
}
