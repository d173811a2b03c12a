package rtpjpeg

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// Frame is a reassembled JPEG frame.
type Frame struct {
	Data          []byte // complete JFIF image; owned by the depacketizer, valid until the next Push
	Type          uint8  // RFC 2435 type
	Width, Height int
	Timestamp     uint32    // RTP timestamp
	CaptureTime   time.Time // from abs-capture-time on the first packet; zero without it
}

// Stats counts what a Depacketizer saw.
type Stats struct {
	Frames      uint64 // emitted
	LostFrames  uint64 // started but dropped: a fragment missing or inconsistent
	LostPackets uint64 // sequence numbers never seen
	Duplicates  uint64 // packets at or behind the newest sequence number seen
	Bad         uint64 // packets that could not be parsed
}

// Depacketizer reassembles RFC 2435 frames and rebuilds complete JFIF
// images. It never emits a frame with a missing, duplicated-inconsistent or
// corrupt fragment: such a frame is dropped and reported (Push's error wraps
// capture.ErrMediaLost, and Stats counts it).
//
// Packets are expected in order, as they arrive over TCP, WebSocket or a
// LAN: a packet behind the newest sequence number is treated as a
// duplicate and ignored, so a reordered fragment costs its frame.
type Depacketizer struct {
	pkt rtp.Packet

	seen    bool   // a packet has been accepted
	ssrc    uint32 // of the stream being followed
	lastSeq uint16 // newest sequence number accepted

	// the frame being assembled
	state    int
	ts       uint32
	typ      uint8
	w, h     uint8
	dri      uint16
	captured time.Time
	nextOff  int
	qtPrec   uint8
	qt       []byte // luminance then chrominance
	scan     []byte
	out      []byte
	lumaLen  int               // bytes of qt that are the luminance table
	qtCache  [128]cachedTables // for Q 128..254, which may be sent once
	stats    Stats
}

// maxMisorder is how far behind the newest sequence number a packet may be
// and still count as a duplicate or late packet; further back means the
// sender restarted (RFC 3550 appendix A.1 uses the same bound).
const maxMisorder = 100

// cachedTables are the quantization tables last sent with one Q value.
type cachedTables struct {
	tables  []byte
	lumaLen int
}

const (
	idle = iota
	assembling
	discarding // the current timestamp's frame is lost; skip its packets
)

// NewDepacketizer returns an empty JPEG depacketizer.
func NewDepacketizer() *Depacketizer {
	return &Depacketizer{qt: make([]byte, 0, 256)}
}

// Stats returns the counters so far.
func (d *Depacketizer) Stats() Stats { return d.stats }

// Push consumes one marshalled RTP packet (see the convention in package
// capture). When it completes a frame, Push returns the frame and true. err
// wraps capture.ErrMediaLost when a frame or packets were lost before or at
// this packet, and capture.ErrBadPacket for a malformed packet.
func (d *Depacketizer) Push(b []byte) (Frame, bool, error) {
	if err := d.pkt.Unmarshal(b); err != nil {
		d.stats.Bad++
		return Frame{}, false, fmt.Errorf("rtpjpeg: %w: %w", capture.ErrBadPacket, err)
	}
	h := &d.pkt.Header
	pl := d.pkt.Payload
	if h.Version != 2 || len(pl) < mainHeaderSize {
		d.stats.Bad++
		return Frame{}, false, fmt.Errorf("rtpjpeg: %w: short JPEG header", capture.ErrBadPacket)
	}
	var lossErr error
	if d.seen {
		diff := int16(h.SequenceNumber - d.lastSeq)
		switch {
		case h.SSRC != d.ssrc || diff <= -maxMisorder:
			// Another stream, or the sender restarted its numbering: start
			// over rather than take everything for duplicates.
			if d.state == assembling {
				d.dropFrame()
				lossErr = fmt.Errorf("rtpjpeg: stream restarted during frame ts %d: %w", d.ts, capture.ErrMediaLost)
			}
			d.state = idle
		case diff <= 0:
			d.stats.Duplicates++
			return Frame{}, false, nil
		case diff > 1:
			d.stats.LostPackets += uint64(diff - 1)
			lossErr = fmt.Errorf("rtpjpeg: %d packets lost before seq %d: %w", diff-1, h.SequenceNumber, capture.ErrMediaLost)
			if d.state == assembling && h.Timestamp == d.ts {
				d.dropFrame()
				d.state = discarding // this packet included; see below
			}
		}
	}
	d.seen, d.lastSeq, d.ssrc = true, h.SequenceNumber, h.SSRC

	if d.state != idle && h.Timestamp != d.ts {
		// A new frame began before the previous one's marker arrived.
		if d.state == assembling {
			d.dropFrame()
			if lossErr == nil {
				lossErr = fmt.Errorf("rtpjpeg: frame ts %d incomplete: %w", d.ts, capture.ErrMediaLost)
			}
		}
		d.state = idle
	}
	if d.state == discarding {
		if h.Marker {
			d.state = idle
		}
		return Frame{}, false, lossErr
	}

	off := int(pl[1])<<16 | int(pl[2])<<8 | int(pl[3])
	typ, q, w, hh := pl[4], pl[5], pl[6], pl[7]
	pl = pl[mainHeaderSize:]
	if d.state == idle {
		if off != 0 {
			// The frame's first packet is missing: nothing of it can be used.
			d.stats.LostFrames++
			d.startDiscard(h)
			if lossErr == nil {
				lossErr = fmt.Errorf("rtpjpeg: first packet of frame ts %d missing: %w", h.Timestamp, capture.ErrMediaLost)
			}
			return Frame{}, false, lossErr
		}
		rest, err := d.begin(h, typ, q, w, hh, pl)
		if err != nil {
			d.stats.Bad++
			d.stats.LostFrames++
			d.startDiscard(h)
			return Frame{}, false, joinErr(lossErr, fmt.Errorf("%w: %w", err, capture.ErrMediaLost))
		}
		pl = rest
	} else {
		if typ != d.typ || w != d.w || hh != d.h || off != d.nextOff {
			d.dropFrame()
			d.startDiscard(h)
			err := fmt.Errorf("rtpjpeg: inconsistent fragment at offset %d (want %d) in frame ts %d: %w", off, d.nextOff, d.ts, capture.ErrMediaLost)
			return Frame{}, false, joinErr(lossErr, err)
		}
		if typ >= 64 {
			if len(pl) < restartHeaderSize {
				d.dropFrame()
				d.startDiscard(h)
				return Frame{}, false, joinErr(lossErr, fmt.Errorf("rtpjpeg: %w: short restart header: %w", capture.ErrBadPacket, capture.ErrMediaLost))
			}
			pl = pl[restartHeaderSize:]
		}
	}
	if off+len(pl) >= maxFragmentOffset {
		d.dropFrame()
		d.startDiscard(h)
		return Frame{}, false, joinErr(lossErr, fmt.Errorf("rtpjpeg: %w: frame exceeds 16 MiB: %w", capture.ErrBadPacket, capture.ErrMediaLost))
	}
	d.scan = append(d.scan, pl...)
	d.nextOff += len(pl)
	if !h.Marker {
		return Frame{}, false, lossErr
	}
	d.state = idle
	f := Frame{
		Type:        d.typ,
		Width:       int(d.w) * 8,
		Height:      int(d.h) * 8,
		Timestamp:   d.ts,
		CaptureTime: d.captured,
	}
	lqt, cqt := d.qt[:d.lumaLen], d.qt[d.lumaLen:]
	if len(cqt) == 0 {
		cqt = lqt
	}
	d.out = AppendHeaders(d.out[:0], d.typ, f.Width, f.Height, lqt, cqt, d.dri)
	d.out = append(d.out, d.scan...)
	d.out = append(d.out, 0xFF, mEOI)
	f.Data = d.out
	d.stats.Frames++
	return f, true, lossErr
}

// begin starts a frame from its first packet and returns the scan data in it.
func (d *Depacketizer) begin(h *rtp.Header, typ, q, w, hh uint8, pl []byte) ([]byte, error) {
	if typ&63 > 1 || typ >= 128 {
		return nil, fmt.Errorf("rtpjpeg: %w: type %d", capture.ErrBadPacket, typ)
	}
	if w == 0 || hh == 0 {
		return nil, fmt.Errorf("rtpjpeg: %w: zero image size", capture.ErrBadPacket)
	}
	d.dri = 0
	if typ >= 64 {
		if len(pl) < restartHeaderSize {
			return nil, fmt.Errorf("rtpjpeg: %w: short restart header", capture.ErrBadPacket)
		}
		d.dri = binary.BigEndian.Uint16(pl)
		pl = pl[restartHeaderSize:]
	}
	if q < 128 {
		// Q 1-99: no tables in the packet; both sides derive them from the
		// standard tables (RFC 2435 section 4.2, appendix A).
		if q == 0 || q >= 100 {
			return nil, fmt.Errorf("rtpjpeg: %w: reserved Q %d", capture.ErrBadPacket, q)
		}
		d.qt = AppendQTables(d.qt[:0], int(q))
		d.lumaLen = 64
		d.startFrame(h, typ, w, hh)
		return pl, nil
	}
	if len(pl) < qtHeaderSize {
		return nil, fmt.Errorf("rtpjpeg: %w: short quantization table header", capture.ErrBadPacket)
	}
	prec := pl[1]
	l := int(binary.BigEndian.Uint16(pl[2:]))
	pl = pl[qtHeaderSize:]
	if len(pl) < l {
		return nil, fmt.Errorf("rtpjpeg: %w: quantization tables truncated", capture.ErrBadPacket)
	}
	// Precision bit i says table i has 16-bit entries (128 bytes).
	t0, t1 := 64, 64
	if prec&1 != 0 {
		t0 = 128
	}
	if prec&2 != 0 {
		t1 = 128
	}
	switch {
	case l == 0 && q != qInBand && d.qtCache[q-128].tables != nil:
		// Q 128-254: a sender may send a Q's tables once and omit them later.
		c := d.qtCache[q-128]
		d.qt = append(d.qt[:0], c.tables...)
		d.lumaLen = c.lumaLen
	case l == t0+t1 || l == t0:
		// One table means luminance and chrominance share it, as ffmpeg
		// sends when its encoder wrote a single DQT table.
		d.qt = append(d.qt[:0], pl[:l]...)
		d.lumaLen = t0
		if q != qInBand {
			c := &d.qtCache[q-128]
			c.tables = append(c.tables[:0], pl[:l]...)
			c.lumaLen = t0
		}
	default:
		return nil, fmt.Errorf("rtpjpeg: %w: quantization tables of %d bytes (precision %d)", capture.ErrBadPacket, l, prec)
	}
	pl = pl[l:]
	d.startFrame(h, typ, w, hh)
	return pl, nil
}

func (d *Depacketizer) startFrame(h *rtp.Header, typ, w, hh uint8) {
	d.state = assembling
	d.ts, d.typ, d.w, d.h = h.Timestamp, typ, w, hh
	d.captured = time.Time{}
	if t, ok := rtpext.HeaderAbsCaptureTime(h); ok {
		d.captured = t
	}
	d.nextOff = 0
	d.scan = d.scan[:0]
}

func (d *Depacketizer) dropFrame() {
	if d.state == assembling {
		d.stats.LostFrames++
	}
	d.state = idle
	d.scan = d.scan[:0]
}

func (d *Depacketizer) startDiscard(h *rtp.Header) {
	d.ts = h.Timestamp
	d.state = discarding
	if h.Marker {
		d.state = idle
	}
}

func joinErr(a, b error) error {
	if a == nil {
		return b
	}
	return fmt.Errorf("%w; %w", a, b)
}
