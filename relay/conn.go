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
