package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/prometheus/client_golang/prometheus"
)

// Relay fans media out from publishers to clients. Create it with New; it is
// safe for concurrent use.
type Relay struct {
	cfg Config
	log *slog.Logger

	// subs holds the sessions of each kind (index = capture.Kind), copied
	// on write so Publish iterates them without a lock.
	subs [3]atomic.Pointer[[]*session]

	mu        sync.Mutex
	sessions  map[*session]struct{}
	pubs      []*Publisher
	listeners map[net.Listener]struct{}
	closed    bool

	self       *Publisher
	videoCodec atomic.Uint32
	// native is the one video codec the relay's own TCP and WebSocket
	// sessions get (SetNativeVideo); 0: whatever is published.
	native atomic.Uint32
	// lastCodec is when each video codec was last published (Unix ns).
	lastCodec [3]atomic.Int64
	lastOpus  atomic.Int64 // when Opus audio was last published (Unix ns)
	lastPCMU  atomic.Int64 // when PCMU audio was last published (Unix ns)
	nextID    atomic.Uint64
	done      chan struct{}
	wg        sync.WaitGroup

	tot      totals
	registry *prometheus.Registry
}

// totals are relay-wide counters; sessions add theirs when they end.
type totals struct {
	mu          sync.Mutex
	ended       [3]stats
	disconnects map[string]uint64
	published   [3]atomic.Uint64 // packets
	pubBytes    [3]atomic.Uint64
	rejected    atomic.Uint64
	keyRequests atomic.Uint64
}

// noPublisher marks a session that only receives.
const noPublisher = 0xff

// maxPublishers bounds publishers: per-session restart state is a 64-bit mask.
const maxPublishers = 64

// New creates a relay. Zero fields of cfg take their defaults; an invalid
// cfg is reported by Validate and here replaced by the defaults with an
// error logged, so a bad configuration file cannot keep the box from
// booting. log may be nil.
func New(cfg Config, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		log.Error("relay: invalid configuration, using defaults", "err", err)
		auth, owner, now := cfg.Authorize, cfg.Owner, cfg.Now
		cfg = DefaultConfig()
		cfg.Authorize, cfg.Owner, cfg.Now = auth, owner, now
	}
	r := &Relay{
		cfg:       cfg.withDefaults(),
		log:       log,
		sessions:  make(map[*session]struct{}),
		listeners: make(map[net.Listener]struct{}),
		done:      make(chan struct{}),
	}
	r.tot.disconnects = make(map[string]uint64)
	for i := range r.subs {
		r.subs[i].Store(&[]*session{})
	}
	r.videoCodec.Store(uint32(r.cfg.VideoCodec))
	r.self, _ = r.NewPublisher("box")
	r.registry = newRegistry(r)
	r.wg.Add(1)
	go r.monitor()
	return r
}

// Config returns the effective configuration (defaults applied).
func (r *Relay) Config() Config { return r.cfg }

// Registry is the Prometheus registry with the relay's metrics (and the Go
// and process collectors), for /metrics.
func (r *Relay) Registry() *prometheus.Registry { return r.registry }

// Publisher is one source of media: the box's camera and microphone, and in
// time a phone's microphone or a remote box. Its packets go to every session
// except its own ("all-me", design S9).
type Publisher struct {
	r          *Relay
	idx        uint8
	name       string
	onKeyframe atomic.Pointer[func()]
	// lastKey is when the keyframe callback last ran (Unix ns); keyLater
	// is set while a request that came too soon waits for its turn.
	lastKey  atomic.Int64
	keyLater atomic.Bool
}

// NewPublisher adds a publisher. At most 64 publishers exist at a time.
func (r *Relay) NewPublisher(name string) (*Publisher, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	used := uint64(0)
	for _, p := range r.pubs {
		used |= 1 << p.idx
	}
	for i := 0; i < maxPublishers; i++ {
		if used&(1<<i) == 0 {
			p := &Publisher{r: r, idx: uint8(i), name: name}
			r.pubs = append(r.pubs, p)
			return p, nil
		}
	}
	return nil, fmt.Errorf("relay: more than %d publishers", maxPublishers)
}

// Remove takes the publisher out of the relay.
func (p *Publisher) Remove() {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, q := range r.pubs {
		if q == p {
			r.pubs = append(r.pubs[:i], r.pubs[i+1:]...)
			return
		}
	}
}

// OnKeyframeRequest sets the function called when a client needs a frame a
// decoder can start from (after a video flush). For the box's own H.264
// encoder it forces an IDR; for a remote publisher it sends RTCP PLI
// (wire.AppendPLI). It must not block.
func (p *Publisher) OnKeyframeRequest(f func()) { p.onKeyframe.Store(&f) }

// OnKeyframeRequest sets the box publisher's keyframe request callback.
func (r *Relay) OnKeyframeRequest(f func()) { r.self.OnKeyframeRequest(f) }

// Publish fans out the box's own burst. Bad bursts are counted in the
// metrics and logged, never forwarded; use a Publisher for the error.
func (r *Relay) Publish(b capture.Burst) {
	if err := r.self.Publish(b); err != nil && !errors.Is(err, ErrClosed) {
		if n := r.tot.rejected.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th...
			r.log.Warn("relay: rejected burst", "err", err, "rejected", n)
		}
	}
}

// Publish copies b and queues it for every session of its kind except the
// publisher's own. It allocates nothing once the unit pool is warm.
func (p *Publisher) Publish(b capture.Burst) error {
	r := p.r
	if err := checkBurst(&b); err != nil {
		return err
	}
	select {
	case <-r.done:
		return ErrClosed
	default:
	}
	native := capture.Codec(r.native.Load())
	if b.Kind == capture.KindVideo {
		var c capture.Codec
		switch b.Packets[0][1] & 0x7f {
		case capture.PayloadTypeJPEG:
			c = capture.CodecJPEG
		case capture.PayloadTypeH264:
			c = capture.CodecH264
		}
		if c != 0 {
			// With a native codec set, the handshakes keep announcing it
			// while the other codec is published beside it.
			if native == 0 || native == c {
				r.videoCodec.Store(uint32(c))
			}
			r.lastCodec[c].Store(ns(r.cfg.Now()))
		}
	}
	r.tot.published[b.Kind].Add(uint64(len(b.Packets)))
	u := newUnit(&b, p.idx)
	if u.opus {
		r.lastOpus.Store(ns(r.cfg.Now()))
	} else if b.Kind == capture.KindAudio && b.Packets[0][1]&0x7f == capture.PayloadTypePCMU {
		r.lastPCMU.Store(ns(r.cfg.Now()))
	}
	r.tot.pubBytes[b.Kind].Add(uint64(len(u.framed)))
	now := ns(r.cfg.Now())
	var keyReq uint64
	for _, s := range *r.subs[b.Kind].Load() {
		only := s.only
		if s.native {
			only = native
		}
		if s.origin != p.idx && (only == 0 || only == u.codec) && s.opus == u.opus {
			keyReq |= s.offer(u, now)
		}
	}
	u.release()
	if keyReq != 0 {
		r.requestKeyframes(keyReq)
	}
	return nil
}

// requestKeyframes asks the publishers in mask for a frame a decoder can
// start from, at most once per KeyframeInterval each: a saturated link
// flushes many sessions, and an encoder forced to an IDR per flush would
// only add to the load. A request that comes too soon is kept and made when
// the interval has passed, so no session waits longer than that plus the
// encoder's delay.
func (r *Relay) requestKeyframes(mask uint64) {
	now := ns(r.cfg.Now())
	gap := int64(r.cfg.KeyframeInterval)
	r.mu.Lock()
	var fs [maxPublishers]func()
	n := 0
	for _, p := range r.pubs {
		if mask&(1<<p.idx) == 0 {
			continue
		}
		f := p.onKeyframe.Load()
		if f == nil || *f == nil {
			continue
		}
		if last := p.lastKey.Load(); last != 0 && now-last < gap {
			if p.keyLater.CompareAndSwap(false, true) {
				p := p
				time.AfterFunc(time.Duration(gap-(now-last)), func() {
					p.keyLater.Store(false)
					select {
					case <-r.done:
					default:
						r.requestKeyframes(1 << p.idx)
					}
				})
			}
			continue
		}
		p.lastKey.Store(now)
		fs[n] = *f
		n++
	}
	r.mu.Unlock()
	for _, f := range fs[:n] {
		r.tot.keyRequests.Add(1)
		f()
	}
}

// checkBurst rejects what a client could not use: unknown kinds, empty
// bursts, packets that are not RTP version 2 or cannot be framed.
func checkBurst(b *capture.Burst) error {
	if b.Kind != capture.KindVideo && b.Kind != capture.KindAudio {
		return fmt.Errorf("relay: burst of kind %d", b.Kind)
	}
	if len(b.Packets) == 0 {
		return fmt.Errorf("relay: empty %s burst", b.Kind)
	}
	for i, p := range b.Packets {
		if len(p) < 12 || len(p) > maxPacket || p[0]>>6 != 2 {
			return fmt.Errorf("relay: %s burst packet %d: %d bytes, not RTP", b.Kind, i, len(p))
		}
	}
	return nil
}

// Viewers is the number of connected clients: the larger of the video and
// the audio session counts (a client normally opens one of each).
func (r *Relay) Viewers() int {
	return max(len(*r.subs[capture.KindVideo].Load()), len(*r.subs[capture.KindAudio].Load()))
}

// Close disconnects every client, stops the listeners and waits for the
// relay's goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	var errs []error
	for ln := range r.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	ss := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.end(errRelayClosed)
	}
	r.wg.Wait()
	return errors.Join(errs...)
}

var errRelayClosed = errors.New("relay closed")

// add registers a session; it fails when the relay is closed or full. The
// session receives nothing until activate: the handshake answer must be
// the first thing on the connection.
func (r *Relay) add(s *session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if len(r.sessions) >= r.cfg.MaxClients {
		return errFull
	}
	r.sessions[s] = struct{}{}
	r.wg.Add(1) // the session's handler; Done in run
	return nil
}

// activate starts fanning out to a registered session. A new H.264 video
// session waits for the next IDR, which the publishers are asked for.
func (r *Relay) activate(s *session) {
	r.mu.Lock()
	if _, ok := r.sessions[s]; !ok {
		r.mu.Unlock()
		return // ended already
	}
	old := *r.subs[s.kind].Load()
	next := make([]*session, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	r.subs[s.kind].Store(&next)
	r.mu.Unlock()
	if s.kind == capture.KindVideo && r.Publishing(capture.CodecH264) && r.takes(s, capture.CodecH264) {
		r.requestKeyframes(^uint64(0))
	}
}

var errFull = errors.New("relay full")

// remove unregisters a session so Publish stops offering to it.
func (r *Relay) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sessions[s]; !ok {
		return
	}
	delete(r.sessions, s)
	old := *r.subs[s.kind].Load()
	next := make([]*session, 0, len(old))
	for _, x := range old {
		if x != s {
			next = append(next, x)
		}
	}
	r.subs[s.kind].Store(&next)
}

// monitor applies the timeouts of every session every CheckEvery.
func (r *Relay) monitor() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.CheckEvery)
	defer t.Stop()
	var ss []*session
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		ss = r.snapshot(ss[:0])
		r.check(ss, ns(r.cfg.Now()))
		clear(ss)
	}
}

func (r *Relay) snapshot(dst []*session) []*session {
	for k := capture.KindVideo; k <= capture.KindAudio; k++ {
		dst = append(dst, *r.subs[k].Load()...)
	}
	return dst
}

// check ejects the sessions whose policy says so (tests call it with a fake time).
func (r *Relay) check(ss []*session, now int64) {
	for _, s := range ss {
		s.mu.Lock()
		e := s.pol.check(now)
		s.mu.Unlock()
		if e != nil {
			s.end(e)
		}
	}
}

// ended records a finished session's counters and reason.
func (r *Relay) ended(s *session, st stats, reason string) {
	r.tot.mu.Lock()
	e := &r.tot.ended[s.kind]
	e.sentMsgs += st.sentMsgs
	e.sentBytes += st.sentBytes
	e.sentUnits += st.sentUnits
	e.dropMsgs += st.dropMsgs
	e.dropUnits += st.dropUnits
	e.flushes += st.flushes
	e.idleFlushes += st.idleFlushes
	e.healthChecks += st.healthChecks
	r.tot.disconnects[reason]++
	r.tot.mu.Unlock()
}

// SetNativeVideo makes c the one video codec the relay's own TCP and
// WebSocket clients get, and the one their handshakes announce, when the
// box publishes two side by side (JPEG for the WebSocket page beside H.264
// for WebRTC and RTSP, which Attach with their own codec). 0 lifts it.
// It applies to connected clients from the next Publish on.
func (r *Relay) SetNativeVideo(c capture.Codec) {
	r.native.Store(uint32(c))
	if c != 0 {
		r.videoCodec.Store(uint32(c))
	}
}

// takes reports whether video session s can be offered units of codec c.
func (r *Relay) takes(s *session, c capture.Codec) bool {
	only := s.only
	if s.native {
		only = capture.Codec(r.native.Load())
	}
	return only == 0 || only == c
}

// VideoCodec is the codec of the box's video: the configured one until the
// first video burst, then the published one.
func (r *Relay) VideoCodec() capture.Codec { return r.codec() }

// Publishing reports whether video of codec c was published within the
// last two seconds (the box may publish JPEG and H.264 side by side).
func (r *Relay) Publishing(c capture.Codec) bool {
	if int(c) >= len(r.lastCodec) {
		return false
	}
	t := r.lastCodec[c].Load()
	return t != 0 && ns(r.cfg.Now())-t < int64(2*time.Second)
}

// PublishingOpus reports whether Opus audio (capture.PayloadTypeOpus) was
// published within the last two seconds, beside the PCMU every other
// session gets.
func (r *Relay) PublishingOpus() bool {
	t := r.lastOpus.Load()
	return t != 0 && ns(r.cfg.Now())-t < int64(2*time.Second)
}

// PublishingPCMU reports whether PCMU audio was published within the last
// two seconds.
func (r *Relay) PublishingPCMU() bool {
	t := r.lastPCMU.Load()
	return t != 0 && ns(r.cfg.Now())-t < int64(2*time.Second)
}
