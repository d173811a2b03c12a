package relay

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
)

// transport is one client connection as a session uses it. Implementations:
// tcpTransport (RFC 4571), wsTransport (WebSocket) and the tests' fakes.
type transport interface {
	// write sends ctrl (one RTCP message, possibly compound; may be empty)
	// and then every packet of units, each unit whole.
	write(units []*unit, ctrl []byte) error
	// tryWrite is write without blocking: it reports whether everything
	// was written; if not, the transport keeps the rest (units and ctrl
	// stay valid) and finish writes it, blocking.
	tryWrite(units []*unit, ctrl []byte) (complete bool, err error)
	finish() error
	// read returns the next message (an RTCP packet) from the client,
	// in buf's memory.
	read(buf []byte) ([]byte, error)
	// abort closes the connection at once, with SO_LINGER 0 where there is
	// a socket (design S15), unblocking read and write.
	abort()
	remote() string
}

// maxCtrl bounds pending control replies of a client that asks faster than
// it reads; more are dropped.
const maxCtrl = 512

// session is one client connection for one media kind.
type session struct {
	r      *Relay
	id     uint64
	kind   capture.Kind
	origin uint8 // publisher index of the client, or noPublisher
	// only, when set, is the one video codec the client can use (WebRTC:
	// H.264); units of another codec are not offered to it.
	only capture.Codec
	// opus: an audio session that takes the Opus stream instead of PCMU.
	opus bool
	// native marks the relay's own TCP and WebSocket sessions: they get
	// the relay's native video codec (SetNativeVideo), read per Publish.
	native bool
	// owner is the client's phone (Config.Owner of its token; "" if none).
	owner string
	t     transport

	mu   sync.Mutex
	pol  *policy
	ctrl []byte // pending RTCP to send (CBTR), a compound packet
	why  error  // reason the session ended
	// writing: a goroutine is in pump; batch and ctrlOut are its.
	writing bool
	// handoff: a write that would have blocked was left to the writer
	// goroutine to finish (writing stays set meanwhile).
	handoff bool

	wakeCh     chan struct{}
	done       chan struct{}
	writerDone chan struct{}
	endOnce    sync.Once

	// Owned by the goroutine in pump.
	batch   []*unit
	ctrlOut []byte
}

func (r *Relay) newSession(kind capture.Kind, t transport) *session {
	s := r.newSessionWith(kind, t, r.cfg.kind(kind))
	s.native = true
	return s
}

// newSessionWith is newSession with a transport's own pacing parameters
// (WebRTC's feedback comes in larger, rarer batches than Health Checks).
func (r *Relay) newSessionWith(kind capture.Kind, t transport, k *KindConfig) *session {
	return &session{
		r:          r,
		id:         r.nextID.Add(1),
		kind:       kind,
		origin:     noPublisher,
		t:          t,
		pol:        newPolicyWith(kind, k, &r.cfg),
		wakeCh:     make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		batch:      make([]*unit, 0, k.MaxUnits+1),
	}
}

// run serves a registered session until it ends; it owns the reader side.
func (s *session) run() {
	defer s.r.wg.Done()
	go s.writeLoop()
	err := s.readLoop()
	s.end(err)
	<-s.writerDone
	s.mu.Lock()
	if s.handoff { // the writer left before finishing: drop the write
		s.handoff = false
		for i, u := range s.batch {
			u.release()
			s.batch[i] = nil
		}
	}
	s.pol.clear()
	st := s.pol.st
	why := s.why
	s.mu.Unlock()
	reason := "client closed"
	var ej *EjectError
	switch {
	case errors.As(why, &ej):
		reason = ej.Reason
		s.r.log.Info("relay: client ejected", "client", s.id, "kind", s.kind, "remote", s.t.remote(), "reason", ej.Reason,
			"flushes", st.flushes, "dropped_packets", st.dropMsgs)
	case errors.Is(why, errRelayClosed):
		reason = "relay closed"
	case errors.Is(why, ErrBadRTCP):
		reason = "bad message"
		s.r.log.Info("relay: client sent a bad message", "client", s.id, "kind", s.kind, "remote", s.t.remote(), "err", why)
	case why != nil && !errors.Is(why, io.EOF) && !errors.Is(why, net.ErrClosed) && !isReset(why):
		reason = "error"
		s.r.log.Info("relay: client error", "client", s.id, "kind", s.kind, "remote", s.t.remote(), "err", why)
	}
	s.r.ended(s, st, reason)
}

// offer queues u; it returns the publishers to ask for a keyframe. When
// the session is idle, the publisher's goroutine writes at once, without
// blocking (see pump), instead of waking the writer goroutine: one
// goroutine handoff less per client and unit.
func (s *session) offer(u *unit, now int64) uint64 {
	s.mu.Lock()
	queued, keyReq := s.pol.offer(u, now)
	ready := queued && !s.pol.busy() && !s.writing
	ej := s.pol.eject
	s.mu.Unlock()
	if ej != nil {
		s.end(ej)
		return 0
	}
	if ready {
		if err := s.pump(); err != nil {
			s.end(err)
		}
	}
	return keyReq
}

func (s *session) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// end stops the session once, for the first reason given.
func (s *session) end(why error) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.why = why
		if s.pol.eject == nil {
			// No more offers: the session is going away.
			s.pol.eject = &EjectError{Reason: "closed"}
		}
		s.mu.Unlock()
		s.r.remove(s)
		close(s.done)
		s.t.abort()
	})
}

// writeLoop finishes the writes that would have blocked the goroutine that
// started them, and sends CBTR replies.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	for {
		select {
		case <-s.wakeCh:
		case <-s.done:
			return
		}
		s.mu.Lock()
		if !s.handoff {
			s.mu.Unlock()
			if err := s.pump(); err != nil {
				s.end(err)
				return
			}
			continue
		}
		s.mu.Unlock()
		err := s.t.finish()
		s.mu.Lock()
		s.handoff = false
		s.mu.Unlock()
		if err = s.wrote(err); err == nil {
			err = s.pumpOwned(false)
		}
		if err != nil {
			s.end(err)
			return
		}
	}
}

// pump writes from the Buffer, and any pending control reply, until the
// policy says busy or nothing is left (S12). Whichever goroutine finds the
// session idle pumps: the publisher's after queueing a unit, the reader's
// right after a Health Check opens the window, the writer's for a CBTR. A
// write that cannot complete without blocking is handed to the writer
// goroutine, so neither Publish nor the reader ever waits on a client. The
// writing flag keeps writes on the connection one at a time.
func (s *session) pump() error {
	s.mu.Lock()
	if s.writing {
		s.mu.Unlock()
		return nil // the goroutine writing now loops and sees the news
	}
	s.writing = true
	s.mu.Unlock()
	return s.pumpOwned(true)
}

// pumpOwned is pump for the goroutine that owns the writing flag. With
// block, it writes blocking (the writer goroutine); without, it hands a
// write that would block to the writer.
func (s *session) pumpOwned(nonblocking bool) error {
	for {
		s.mu.Lock()
		s.batch = s.pol.take(s.batch[:0], ns(s.r.cfg.Now()))
		s.ctrlOut = append(s.ctrlOut[:0], s.ctrl...)
		s.ctrl = s.ctrl[:0]
		if len(s.batch) == 0 && len(s.ctrlOut) == 0 {
			s.writing = false
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		var err error
		if nonblocking {
			var complete bool
			complete, err = s.t.tryWrite(s.batch, s.ctrlOut)
			if err == nil && !complete {
				s.mu.Lock()
				s.handoff = true
				s.mu.Unlock()
				s.wake()
				return nil
			}
		} else {
			err = s.t.write(s.batch, s.ctrlOut)
		}
		if err := s.wrote(err); err != nil {
			return err
		}
	}
}

// wrote ends a write of s.batch: it releases the units and tells the policy.
// On error the writing flag is dropped (the session is ending).
func (s *session) wrote(err error) error {
	for i, u := range s.batch {
		u.release()
		s.batch[i] = nil
	}
	s.mu.Lock()
	if len(s.batch) > 0 {
		s.pol.written()
	}
	if err != nil {
		s.writing = false
	}
	s.mu.Unlock()
	return err
}

// readLoop handles the client's RTCP until the connection fails.
func (s *session) readLoop() error {
	var buf [1500]byte
	for {
		msg, err := s.t.read(buf[:])
		if err != nil {
			return err
		}
		if err := s.control(msg); err != nil {
			return err
		}
	}
}

// control applies one message (possibly compound RTCP) from the client.
func (s *session) control(msg []byte) error {
	for len(msg) > 0 {
		c, rest, err := wire.ParseControl(msg)
		if err != nil {
			return errors.Join(ErrBadRTCP, err)
		}
		msg = rest
		switch c.Type {
		case wire.ControlHealthCheck:
			now := ns(s.r.cfg.Now())
			s.mu.Lock()
			more := s.pol.healthCheck(c.Count, now)
			s.mu.Unlock()
			if more {
				if err := s.pump(); err != nil {
					return err
				}
			}
		case wire.ControlTimeQuery:
			box := wire.NTP(s.r.cfg.Now())
			s.mu.Lock()
			if len(s.ctrl) < maxCtrl {
				s.ctrl = wire.AppendTimeReply(s.ctrl, c.ClientTime, box)
			}
			s.mu.Unlock()
			s.wake()
		case wire.ControlPLI:
			// A viewer asks for a keyframe (e.g. it lost its decoder state).
			s.r.requestKeyframes(^uint64(0))
		}
	}
	return nil
}
