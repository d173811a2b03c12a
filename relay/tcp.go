package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/relay/wire"
)

// ServeTCP accepts clients on ln (RFC 4571 framing and the text handshake of
// docs/protocol.md) until ln fails or the relay closes. It returns ErrClosed
// after Close.
func (r *Relay) ServeTCP(ln net.Listener) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.listeners[ln] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, ln)
		r.mu.Unlock()
	}()
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-r.done:
				return ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors or a client gone before accept: wait
				// and go on rather than stop serving everyone.
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("relay: accept: %w", err)
		}
		backoff = 5 * time.Millisecond
		go r.handleTCP(c)
	}
}

func (r *Relay) handleTCP(c net.Conn) {
	tc := netguard.TCPConn(c) // under a netguard.Conn on a capped listener
	_ = c.SetDeadline(time.Now().Add(r.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 256)
	var buf [512]byte
	body, err := wire.ReadFrame(br, buf[:])
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) {
			r.refuse(c, "bad handshake")
		} else {
			abort(c)
		}
		return
	}
	h, err := wire.ParseHello(body)
	if err != nil {
		r.refuse(c, "bad handshake")
		return
	}
	if r.cfg.Authorize != nil {
		if err := r.cfg.Authorize(h.Token); err != nil {
			// Only "unpaired" leaks; the reason goes to the log.
			r.log.Info("relay: refused client", "remote", c.RemoteAddr().String(), "err", err)
			r.refuse(c, "unpaired")
			return
		}
	}
	t := &tcpTransport{c: c, tc: tc, br: br, addr: c.RemoteAddr().String()}
	s := r.newSession(h.Kind, t)
	s.owner = r.ownerOf(h.Token)
	if err := r.add(s); err != nil {
		if errors.Is(err, errFull) {
			r.refuse(c, "busy")
		} else {
			abort(c)
		}
		return
	}
	if tc != nil {
		_ = tc.SetNoDelay(!r.cfg.kind(h.Kind).Nagle)
	}
	if testHookBeforeAnswer != nil {
		testHookBeforeAnswer(r)
	}
	accept := wire.AcceptFor(h.Kind, r.codec(), r.cfg.kind(h.Kind).HealthInterval)
	frame, _ := wire.AppendFrame(nil, accept.Append(nil))
	if _, err := c.Write(frame); err != nil {
		s.end(err) // run then only cleans up
	}
	_ = c.SetDeadline(time.Time{})
	r.activate(s)
	s.run()
}

// testHookBeforeAnswer, set by tests, runs just before the handshake answer
// is written.
var testHookBeforeAnswer func(*Relay)

// refuse answers "ERR <reason>" and closes so that the client, not the
// relay, is the side that closes first: the relay keeps no TIME_WAIT even
// for refused clients. A client that does not close in a second is reset.
func (r *Relay) refuse(c net.Conn, reason string) {
	frame, _ := wire.AppendFrame(nil, []byte("ERR "+reason))
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(frame); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	abort(c)
}

// abort closes c with SO_LINGER 0: an RST, no TIME_WAIT (design S15).
func abort(c net.Conn) {
	if tc := netguard.TCPConn(c); tc != nil {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (r *Relay) codec() capture.Codec { return capture.Codec(r.videoCodec.Load()) }

// tcpTransport frames packets per RFC 4571. A unit's packets are already
// framed back to back in memory, so a write round is one writev of one
// slice per unit.
type tcpTransport struct {
	c    net.Conn
	tc   *net.TCPConn
	br   *bufio.Reader
	addr string
	iov  [][]byte    // reused backing array
	wb   net.Buffers // consumed by WriteTo; what finish has left to write
	hdr  [2]byte
	nb   nonblocking // tryWrite's state (tcp_linux.go)
}

func (t *tcpTransport) write(units []*unit, ctrl []byte) error {
	t.gather(units, ctrl)
	var err error
	if len(t.iov) == 1 {
		_, err = t.c.Write(t.iov[0])
	} else {
		t.wb = t.iov
		_, err = t.wb.WriteTo(t.c)
	}
	clear(t.iov)
	return err
}

// finish writes what tryWrite left, blocking.
func (t *tcpTransport) finish() error {
	_, err := t.wb.WriteTo(t.c)
	clear(t.iov)
	return err
}

// gather lines up ctrl (framed) and the units' framed bytes in t.iov.
func (t *tcpTransport) gather(units []*unit, ctrl []byte) int {
	t.iov = t.iov[:0]
	total := 0
	if len(ctrl) > 0 {
		binary.BigEndian.PutUint16(t.hdr[:], uint16(len(ctrl)))
		t.iov = append(t.iov, t.hdr[:], ctrl)
		total += 2 + len(ctrl)
	}
	for _, u := range units {
		t.iov = append(t.iov, u.framed)
		total += len(u.framed)
	}
	return total
}

// consume drops the first n bytes from t.wb.
func (t *tcpTransport) consume(n int) {
	for n > 0 && len(t.wb) > 0 {
		if n < len(t.wb[0]) {
			t.wb[0] = t.wb[0][n:]
			return
		}
		n -= len(t.wb[0])
		t.wb = t.wb[1:]
	}
}

func (t *tcpTransport) read(buf []byte) ([]byte, error) { return wire.ReadFrame(t.br, buf) }

func (t *tcpTransport) abort() { abort(t.c) }

func (t *tcpTransport) remote() string { return t.addr }

// isReset reports errors that mean the peer went away.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF)
}
