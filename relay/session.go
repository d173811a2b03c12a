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
	t      transport

	mu   sync.Mutex
	pol  *policy
	ctrl []byte // pending RTCP to send (CBTR), a compound packet
	why  error  // reason the session ended
	// writing: a goroutine is in pump; batch and ctrlOut are its.
	writing bool

	wakeCh     chan struct{}
	done       chan struct{}
	writerDone chan struct{}
	endOnce    sync.Once

	// Owned by the goroutine in pump.
	batch   []*unit
	ctrlOut []byte
}

func (r *Relay) newSession(kind capture.Kind, t transport) *session {
	return &session{
		r:          r,
		id:         r.nextID.Add(1),
		kind:       kind,
		origin:     noPublisher,
		t:          t,
		pol:        newPolicy(kind, &r.cfg),
		wakeCh:     make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		batch:      make([]*unit, 0, r.cfg.kind(kind).MaxUnits+1),
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

// offer queues u; it returns the publishers to ask for a keyframe.
func (s *session) offer(u *unit, now int64) uint64 {
	s.mu.Lock()
	queued, keyReq := s.pol.offer(u, now)
	wake := queued && !s.pol.busy()
	ej := s.pol.eject
	s.mu.Unlock()
	if ej != nil {
		s.end(ej)
		return 0
	}
	if wake {
		s.wake()
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

// writeLoop sends from the Buffer when Publish wakes it (S12).
func (s *session) writeLoop() {
	defer close(s.writerDone)
	for {
		select {
		case <-s.wakeCh:
		case <-s.done:
			return
		}
		if err := s.pump(); err != nil {
			s.end(err)
			return
		}
	}
}

// pump writes from the Buffer, and any pending control reply, until the
// policy says busy or nothing is left. Whichever goroutine finds the
// session idle pumps: the writer when Publish wakes it, the reader right
// after a Health Check opens the window, which saves a goroutine handoff
// per Health Check for a client that is pacing on its window. The writing
// flag keeps writes on the connection one at a time.
func (s *session) pump() error {
	s.mu.Lock()
	if s.writing {
		s.mu.Unlock()
		return nil // the goroutine writing now loops and sees the news
	}
	s.writing = true
	for {
		s.batch = s.pol.take(s.batch[:0], ns(s.r.cfg.Now()))
		s.ctrlOut = append(s.ctrlOut[:0], s.ctrl...)
		s.ctrl = s.ctrl[:0]
		if len(s.batch) == 0 && len(s.ctrlOut) == 0 {
			s.writing = false
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		err := s.t.write(s.batch, s.ctrlOut)
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
			s.mu.Unlock()
			return err
		}
	}
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
