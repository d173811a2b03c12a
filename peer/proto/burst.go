package proto

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
)

// The publish connection (S7) carries one capture.Burst per binary
// WebSocket message:
//
//	kind      1 byte   1 video, 2 audio
//	flags     1 byte   bit 0: keyframe
//	capture   8 bytes  capture time, Unix nanoseconds, big-endian
//	packets   repeated: 2-byte big-endian length, then that many bytes of RTP
//
// A burst is a whole video frame or audio chunk, so the relay can keep its
// per-client policy (flush to a frame start, never half a frame).
const (
	burstHeader  = 10
	minRTPPacket = 12
	maxRTPPacket = 1500
	maxBurstPkts = 512
)

// AppendBurst appends the wire form of b to dst.
func AppendBurst(dst []byte, b *capture.Burst) []byte {
	var flags byte
	if b.Keyframe {
		flags = 1
	}
	dst = append(dst, byte(b.Kind), flags)
	var ts int64
	if !b.CaptureTime.IsZero() {
		ts = b.CaptureTime.UnixNano()
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	for _, p := range b.Packets {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// ParseBurst decodes one burst message from a publishing box. The packets
// point into msg; pkts is reused for the packet slice headers.
func ParseBurst(msg []byte, pkts [][]byte) (capture.Burst, error) {
	var b capture.Burst
	if len(msg) < burstHeader {
		return b, fmt.Errorf("%w: burst of %d bytes", ErrBadMessage, len(msg))
	}
	switch k := capture.Kind(msg[0]); k {
	case capture.KindVideo, capture.KindAudio:
		b.Kind = k
	default:
		return b, fmt.Errorf("%w: burst kind %d", ErrBadMessage, msg[0])
	}
	if msg[1]&^1 != 0 {
		return b, fmt.Errorf("%w: burst flags %#x", ErrBadMessage, msg[1])
	}
	b.Keyframe = msg[1]&1 != 0
	if ts := int64(binary.BigEndian.Uint64(msg[2:10])); ts != 0 {
		b.CaptureTime = time.Unix(0, ts)
	}
	rest := msg[burstHeader:]
	pkts = pkts[:0]
	for len(rest) > 0 {
		if len(rest) < 2 {
			return b, fmt.Errorf("%w: truncated packet length", ErrBadMessage)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n < minRTPPacket || n > maxRTPPacket || n > len(rest) {
			return b, fmt.Errorf("%w: packet of %d bytes (%d left)", ErrBadMessage, n, len(rest))
		}
		if rest[0]>>6 != 2 {
			return b, fmt.Errorf("%w: not RTP version 2", ErrBadMessage)
		}
		if len(pkts) == maxBurstPkts {
			return b, fmt.Errorf("%w: more than %d packets in a burst", ErrBadMessage, maxBurstPkts)
		}
		pkts = append(pkts, rest[:n])
		rest = rest[n:]
	}
	if len(pkts) == 0 {
		return b, fmt.Errorf("%w: burst without packets", ErrBadMessage)
	}
	b.Packets = pkts
	return b, nil
}
