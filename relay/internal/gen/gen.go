// Package gen makes synthetic media bursts for the relay's tests and its
// benchmark: RFC 2435 JPEG video packets and PCMU audio packets with the
// abs-capture-time extension on each unit's first packet, as the box's
// packetizers send them. The JPEG payload is filler of a realistic size: the
// relay never looks inside it, and the viewer checks only framing.
package gen

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
)

// Stream makes the bursts of one kind. It reuses its memory: a burst is
// valid until the next call, like a real packetizer's.
type Stream struct {
	kind       capture.Kind
	frameBytes int // mean JPEG payload per video frame
	maxPacket  int
	seq        uint16
	ssrc       uint32
	clock      *rtpext.Clock
	rnd        *rand.Rand
	buf        []byte
	pkts       [][]byte
}

// Video returns a 1280x720 JPEG stream whose frames carry about frameBytes
// of payload each (varying by up to ±10%, as real frames do), in packets of
// at most maxPacket bytes.
func Video(frameBytes, maxPacket int, seed uint64) *Stream {
	return &Stream{kind: capture.KindVideo, frameBytes: frameBytes, maxPacket: maxPacket, ssrc: 0x1234,
		clock: rtpext.NewClockAt(capture.VideoClockRate, 1000), rnd: rand.New(rand.NewPCG(seed, 1))}
}

// Audio returns a PCMU stream of 20 ms packets.
func Audio(seed uint64) *Stream {
	return &Stream{kind: capture.KindAudio, ssrc: 0x5678, clock: rtpext.NewClockAt(capture.PCMUClockRate, 2000),
		rnd: rand.New(rand.NewPCG(seed, 2))}
}

const (
	hdrExt  = 28 // RTP header with the abs-capture-time extension
	hdrBare = 12
	jpegHdr = 8       // RFC 2435 main header
	qtBytes = 4 + 128 // quantization table header and tables
)

// tables are two flat quantization tables (all ones).
var tables = func() (t [128]byte) {
	for i := range t {
		t[i] = 1
	}
	return t
}()

// filler is the JPEG payload: a fixed pattern, copied, so that making a
// frame costs the publisher a memmove and nothing more.
const fillerPeriod = 251

var filler = func() []byte {
	b := make([]byte, fillerPeriod+64<<10)
	for i := range b {
		b[i] = byte(i % fillerPeriod)
	}
	return b
}()

var silence = func() (s [160]byte) { // mu-law silence
	for i := range s {
		s[i] = 0xff
	}
	return s
}()

// Next returns the burst captured at t.
func (s *Stream) Next(t time.Time) capture.Burst {
	ts := s.clock.Timestamp(t)
	s.buf = s.buf[:0]
	s.pkts = s.pkts[:0]
	var offs [256]int
	n := 0
	if s.kind == capture.KindAudio {
		offs[n], n = len(s.buf), n+1
		s.buf = s.header(s.buf, capture.PayloadTypePCMU, ts, true, true, t)
		s.buf = append(s.buf, silence[:]...)
	} else {
		size := s.frameBytes + s.rnd.IntN(s.frameBytes/5+1) - s.frameBytes/10
		for off := 0; off < size && n < len(offs); {
			first := off == 0
			h := hdrBare
			if first {
				h = hdrExt
			}
			chunk := min(s.maxPacket-h-jpegHdr, size-off)
			if first {
				chunk = min(s.maxPacket-h-jpegHdr-qtBytes, size-off)
			}
			offs[n], n = len(s.buf), n+1
			s.buf = s.header(s.buf, capture.PayloadTypeJPEG, ts, off+chunk >= size, first, t)
			// RFC 2435 main header: type-specific, fragment offset, type 1,
			// Q 255 (tables in-band), 1280/8, 720/8; the first packet then
			// carries the quantization table header and two 64-byte tables.
			s.buf = append(s.buf, 0, byte(off>>16), byte(off>>8), byte(off), 1, 255, 1280/8, 720/8)
			if first {
				s.buf = append(s.buf, 0, 0, 0, 128)
				s.buf = append(s.buf, tables[:]...)
			}
			s.buf = append(s.buf, filler[off%fillerPeriod:off%fillerPeriod+chunk]...)
			off += chunk
		}
	}
	offs[n] = len(s.buf)
	for i := 0; i < n; i++ {
		s.pkts = append(s.pkts, s.buf[offs[i]:offs[i+1]])
	}
	return capture.Burst{Kind: s.kind, Packets: s.pkts, Keyframe: true, CaptureTime: t}
}

func (s *Stream) header(b []byte, pt uint8, ts uint32, marker, ext bool, t time.Time) []byte {
	v := byte(0x80)
	if ext {
		v |= 0x10
	}
	m := pt
	if marker {
		m |= 0x80
	}
	b = append(b, v, m)
	b = binary.BigEndian.AppendUint16(b, s.seq)
	s.seq++
	b = binary.BigEndian.AppendUint32(b, ts)
	b = binary.BigEndian.AppendUint32(b, s.ssrc)
	if ext {
		// RFC 8285 one-byte form: 0xBEDE, 3 words; ID 1, length 8; padding.
		b = append(b, 0xbe, 0xde, 0, 3, rtpext.AbsCaptureTimeID<<4|7)
		b = binary.BigEndian.AppendUint64(b, rtpext.NTP(t))
		b = append(b, 0, 0, 0)
	}
	return b
}
