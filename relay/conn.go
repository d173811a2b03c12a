package relay

import "encoding/binary"

// Framed returns the unit's packets back to back, each behind its 2-byte
// big-endian length (RFC 4571), and the offset of each packet's length
// prefix in it: a stream transport with a 4-byte header (RTSP interleaved,
// RFC 2326 section 10.12) writes its 2 extra bytes and then the framed
// bytes from that offset, without copying the packet.
func (u *unit) Framed() (framed []byte, offsets []int32) { return u.framed, u.offs }

// PacketLen is the length of the packet whose length prefix is at off in
// Framed.
func (u *unit) PacketLen(off int32) int { return int(binary.BigEndian.Uint16(u.framed[off:])) }

// NonBlockingConn is a PacketConn that can also write without blocking,
// like the relay's own TCP transport: then the goroutine that finds the
// session idle (Publish, or an Ack) writes at once, and only a write the
// socket cannot take whole goes to the session's writer goroutine. On a
// VM every goroutine hand-off is a futex round trip; at hundreds of
// clients and 80 bursts a second that is most of the relay's CPU.
type NonBlockingConn interface {
	PacketConn
	// TryWriteUnits writes what the socket takes now and reports whether
	// that was everything; if not, the conn keeps the rest (units stay
	// valid) and FinishUnits writes it, blocking.
	TryWriteUnits(units []*Unit) (complete bool, err error)
	FinishUnits() error
}

// Interleaved returns the unit's packets each behind the 4-byte header of
// RTSP's interleaved framing ('$', ch, 16-bit length; RFC 2326 section
// 10.12), contiguous, so an RTSP reader's write of a frame is one slice.
// It is built by the first caller for a channel and shared by every
// reader on the same channel (the usual case: every client sets video up
// on 0); a reader on another channel gets ok false and frames the packets
// itself (Framed).
func (u *unit) Interleaved(ch byte) (b []byte, ok bool) {
	u.ilMu.Lock()
	defer u.ilMu.Unlock()
	switch u.ilCh {
	case int(ch):
		return u.il, true
	case -1:
	default:
		return nil, false
	}
	u.il = u.il[:0]
	for _, off := range u.offs {
		n := int(binary.BigEndian.Uint16(u.framed[off:]))
		u.il = append(u.il, '$', ch)
		u.il = append(u.il, u.framed[off:int(off)+2+n]...)
	}
	u.ilCh = int(ch)
	return u.il, true
}

// AckNow is Ack applied in the caller's goroutine: for a transport that
// learns of acknowledgements while it writes (RTSP over TCP reads its
// socket's unacknowledged bytes after each write), so that no goroutine
// is woken per write and client. Called from inside a write (a
// NonBlockingConn's TryWriteUnits), it only lowers the idle count and the
// write in progress goes on with the window it opened; called from
// elsewhere, it writes what the window now allows, like a Health Check
// arriving.
func (c *Client) AckNow(n int) {
	if n <= 0 {
		return
	}
	s := c.s
	now := ns(s.r.cfg.Now())
	s.mu.Lock()
	more := s.pol.healthCheck(uint32(min(n, 1<<31-1)), now)
	s.mu.Unlock()
	if more {
		if err := s.pump(); err != nil {
			s.end(err)
		}
	}
}
