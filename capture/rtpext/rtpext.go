// Package rtpext writes and reads the RTP header extension callbox puts on
// its media: abs-capture-time
// (http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time) in the
// RFC 8285 one-byte form with extension ID 1, carrying the wall-clock capture
// time as a 64-bit NTP timestamp (UQ32.32 seconds since 1900). It goes on the
// first packet of every video frame and on every audio packet, so a receiver
// can measure capture-to-display latency and line audio up with video.
//
// It also holds the small pieces every packetizer shares: the mapping from
// capture time to RTP timestamp (Clock) and a random start for sequence
// numbers, timestamps and SSRCs.
package rtpext

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

const (
	// AbsCaptureTimeURI names the extension in SDP (a=extmap).
	AbsCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
	// AbsCaptureTimeID is the one-byte extension ID callbox uses.
	AbsCaptureTimeID = 1
	// AbsCaptureTimeSize is the size of the extension element's payload.
	AbsCaptureTimeSize = 8
	// HeaderSize is the marshalled size of an RTP header (no CSRCs) carrying
	// only abs-capture-time: 12 fixed + 4 extension header + 1 element header
	// + 8 payload, padded to 28.
	HeaderSize = 28
	// BareHeaderSize is the size of an RTP header without extension or CSRCs.
	BareHeaderSize = 12

	profileOneByte = 0xBEDE
	ntpEpochOffset = 2208988800 // seconds from 1900-01-01 to 1970-01-01
)

// ErrNoExtension reports a packet without abs-capture-time.
var ErrNoExtension = errors.New("rtpext: no abs-capture-time extension")

// NTP converts t to a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
func NTP(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := uint64(ns%1e9) << 32 / 1e9
	return sec<<32 | frac
}

// Time converts a 64-bit NTP timestamp to a time.Time. Fractions are
// rounded to the nearest nanosecond, so Time(NTP(t)) == t for any t between
// 1970 and 2036.
func Time(ntp uint64) time.Time {
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := ntp & 0xFFFFFFFF
	ns := int64((frac*1e9 + 1<<31) >> 32)
	return time.Unix(sec, ns)
}

// SetAbsCaptureTime makes h carry abs-capture-time t as its only extension.
// buf is the caller's storage for the extension payload and must stay
// untouched until h is marshalled: rtp.Header keeps a reference to it. Once
// h.Extensions has capacity for one element it allocates nothing.
func SetAbsCaptureTime(h *rtp.Header, buf *[AbsCaptureTimeSize]byte, t time.Time) error {
	binary.BigEndian.PutUint64(buf[:], NTP(t))
	h.Extension = true
	h.ExtensionProfile = profileOneByte
	h.Extensions = h.Extensions[:0]
	if err := h.SetExtension(AbsCaptureTimeID, buf[:]); err != nil {
		return fmt.Errorf("rtpext: set abs-capture-time: %w", err)
	}
	return nil
}

// HeaderAbsCaptureTime returns the abs-capture-time of a parsed header.
func HeaderAbsCaptureTime(h *rtp.Header) (time.Time, bool) {
	if !h.Extension || h.ExtensionProfile != profileOneByte {
		return time.Time{}, false
	}
	b := h.GetExtension(AbsCaptureTimeID)
	if len(b) < AbsCaptureTimeSize {
		return time.Time{}, false
	}
	return Time(binary.BigEndian.Uint64(b)), true
}

// AbsCaptureTime reads abs-capture-time straight from a marshalled RTP
// packet without parsing it into an rtp.Packet and without allocating: the
// relay calls it per packet. It returns ErrNoExtension when the packet has no
// such element and an error when the header is malformed.
func AbsCaptureTime(pkt []byte) (time.Time, error) {
	v, err := AbsCaptureTimeNTP(pkt)
	if err != nil {
		return time.Time{}, err
	}
	return Time(v), nil
}

// AbsCaptureTimeNTP is AbsCaptureTime returning the raw NTP timestamp.
func AbsCaptureTimeNTP(pkt []byte) (uint64, error) {
	if len(pkt) < BareHeaderSize || pkt[0]>>6 != 2 {
		return 0, errMalformed
	}
	if pkt[0]&0x10 == 0 {
		return 0, ErrNoExtension
	}
	n := BareHeaderSize + 4*int(pkt[0]&0x0F)
	if len(pkt) < n+4 {
		return 0, errMalformed
	}
	profile := binary.BigEndian.Uint16(pkt[n:])
	end := n + 4 + 4*int(binary.BigEndian.Uint16(pkt[n+2:]))
	if len(pkt) < end {
		return 0, errMalformed
	}
	if profile != profileOneByte {
		return 0, ErrNoExtension
	}
	// RFC 8285 section 4.2: elements of ID(4) L(4) and L+1 bytes; a zero
	// byte is padding; ID 15 ends parsing, and so does ID 0 with a length
	// (as pion does: it is no valid element).
	for i := n + 4; i < end; {
		if pkt[i] == 0 {
			i++
			continue
		}
		id := pkt[i] >> 4
		if id == 0 || id == 15 {
			break
		}
		l := int(pkt[i]&0x0F) + 1
		i++
		if i+l > end {
			return 0, errMalformed
		}
		if id == AbsCaptureTimeID {
			// 8 bytes, or 16 with the estimated capture clock offset.
			if l != 8 && l != 16 {
				return 0, errMalformed
			}
			return binary.BigEndian.Uint64(pkt[i:]), nil
		}
		i += l
	}
	return 0, ErrNoExtension
}

var errMalformed = fmt.Errorf("rtpext: malformed RTP header extension")

// Random32 returns a random 32-bit value for SSRCs and RTP start values
// (RFC 3550 section 5.1 wants sequence numbers and timestamps to start at
// random values).
func Random32() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+
		// crashes the program instead); keep a deterministic fallback
		// anyway rather than panicking here.
		return uint32(time.Now().UnixNano())
	}
	return binary.BigEndian.Uint32(b[:])
}

// Clock maps capture times to RTP timestamps at a fixed clock rate,
// starting from a random value at the first capture time it sees.
// Timestamps follow the capture clock exactly, including gaps, so a receiver
// sees real timing; they wrap modulo 2^32 as RFC 3550 expects.
type Clock struct {
	rate    int64
	base    uint32
	t0      time.Time
	started bool
}

// NewClock returns a Clock of rate Hz starting at a random RTP timestamp.
func NewClock(rate int) *Clock {
	return &Clock{rate: int64(rate), base: Random32()}
}

// NewClockAt is NewClock with a fixed start value, for tests and for
// senders that must agree with an SDP or RTSP announcement.
func NewClockAt(rate int, base uint32) *Clock {
	return &Clock{rate: int64(rate), base: base}
}

// Timestamp returns the RTP timestamp of capture time t.
func (c *Clock) Timestamp(t time.Time) uint32 {
	if !c.started {
		c.t0, c.started = t, true
	}
	d := t.Sub(c.t0) // saturates at about ±292 years; fine for a call
	// Split to avoid overflowing int64 in d*rate for long-running boxes.
	ticks := int64(d/time.Second)*c.rate + int64(d%time.Second)*c.rate/int64(time.Second)
	return c.base + uint32(ticks)
}

// Rate returns the clock rate in Hz.
func (c *Clock) Rate() int { return int(c.rate) }
