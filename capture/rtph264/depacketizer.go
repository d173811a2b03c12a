package rtph264

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// maxMisorder is how far behind the newest sequence number a packet may be
// and still count as a duplicate; further back means the sender restarted
// (the bound of RFC 3550 appendix A.1).
const maxMisorder = 100

// MaxAccessUnitSize bounds the payload bytes of one access unit; a 1080p
// IDR at a high bitrate is a few hundred kilobytes.
const MaxAccessUnitSize = 8 << 20

// AccessUnit is one reassembled H.264 access unit.
type AccessUnit struct {
	Data        []byte // Annex B with 4-byte start codes; owned by the depacketizer, valid until the next Push
	Timestamp   uint32
	Keyframe    bool      // contains an IDR slice
	CaptureTime time.Time // from abs-capture-time; zero without it
}

// Stats counts what a Depacketizer saw.
type Stats struct {
	AccessUnits uint64 // emitted
	LostUnits   uint64 // started but dropped incomplete
	Skipped     uint64 // complete but dropped while waiting for an IDR after loss
	LostPackets uint64 // sequence numbers never seen
	Duplicates  uint64
	Bad         uint64
}

// Depacketizer reassembles RFC 6184 packets (single NAL unit, STAP-A,
// FU-A) into access units with pion's codecs.H264Packet. An access unit
// with a missing packet is dropped, and so is everything after it up to the
// next IDR, because P slices that reference a lost picture decode into
// garbage; NeedKeyframe tells the caller to ask the sender for one (PLI).
// It starts out waiting for an IDR too.
type Depacketizer struct {
	pkt      rtp.Packet
	h264     codecs.H264Packet
	seen     bool
	ssrc     uint32
	lastSeq  uint16
	active   bool // assembling an access unit
	broken   bool // the current access unit lost a packet
	ts       uint32
	keyframe bool
	inFU     bool
	captured time.Time
	needKey  bool
	nalCount int      // NAL units appended to au
	size     int      // payload bytes of the access unit so far
	nals     [][]byte // scratch for the emit check
	au       []byte
	out      []byte
	stats    Stats
}

// NewDepacketizer returns a depacketizer that waits for the first IDR.
func NewDepacketizer() *Depacketizer { return &Depacketizer{needKey: true} }

// Stats returns the counters so far.
func (d *Depacketizer) Stats() Stats { return d.stats }

// NeedKeyframe reports that the depacketizer drops access units until an
// IDR arrives.
func (d *Depacketizer) NeedKeyframe() bool { return d.needKey }

// Push consumes one marshalled RTP packet (see the convention in package
// capture). err wraps capture.ErrMediaLost when media was lost before or at
// this packet, and capture.ErrBadPacket for a malformed packet.
func (d *Depacketizer) Push(b []byte) (AccessUnit, bool, error) {
	if err := d.pkt.Unmarshal(b); err != nil {
		d.stats.Bad++
		return AccessUnit{}, false, fmt.Errorf("rtph264: %w: %w", capture.ErrBadPacket, err)
	}
	h := &d.pkt.Header
	if h.Version != 2 || len(d.pkt.Payload) == 0 {
		d.stats.Bad++
		return AccessUnit{}, false, fmt.Errorf("rtph264: %w: empty payload", capture.ErrBadPacket)
	}
	var lossErr error
	if d.seen {
		diff := int16(h.SequenceNumber - d.lastSeq)
		switch {
		case h.SSRC != d.ssrc || diff <= -maxMisorder:
			// Another stream, or the sender restarted its numbering: start
			// over at its next IDR.
			if d.active {
				d.drop()
				lossErr = fmt.Errorf("rtph264: stream restarted during access unit ts %d: %w", d.ts, capture.ErrMediaLost)
			}
			d.needKey = true
		case diff <= 0:
			d.stats.Duplicates++
			return AccessUnit{}, false, nil
		case diff > 1:
			d.stats.LostPackets += uint64(diff - 1)
			lossErr = fmt.Errorf("rtph264: %d packets lost before seq %d: %w", diff-1, h.SequenceNumber, capture.ErrMediaLost)
			d.needKey = true
			if d.active {
				// Whatever the lost packets belonged to, the unit being
				// assembled can no longer be trusted complete.
				d.broken = true
			}
		}
	}
	d.seen, d.lastSeq, d.ssrc = true, h.SequenceNumber, h.SSRC

	if d.active && h.Timestamp != d.ts {
		// A new access unit before the previous one's marker.
		d.drop()
		d.needKey = true
		if lossErr == nil {
			lossErr = fmt.Errorf("rtph264: access unit ts %d incomplete: %w", d.ts, capture.ErrMediaLost)
		}
	}
	if !d.active {
		d.active, d.broken, d.keyframe, d.inFU = true, false, false, false
		d.nalCount, d.size = 0, 0
		d.ts = h.Timestamp
		d.au = d.au[:0]
		d.h264 = codecs.H264Packet{}
		d.captured = time.Time{}
		if t, ok := rtpext.HeaderAbsCaptureTime(h); ok {
			d.captured = t
		}
	}
	if !d.broken {
		d.size += len(d.pkt.Payload)
		if d.size > MaxAccessUnitSize {
			// A sender that never sets the marker must not grow our
			// buffers (or pion's FU-A buffer) without bound.
			d.stats.Bad++
			d.broken, d.needKey = true, true
			d.h264 = codecs.H264Packet{}
			lossErr = joinErr(lossErr, fmt.Errorf("rtph264: %w: access unit over %d bytes", capture.ErrBadPacket, MaxAccessUnitSize))
		} else if err := d.add(d.pkt.Payload); err != nil {
			d.stats.Bad++
			d.broken = true
			d.needKey = true
			lossErr = joinErr(lossErr, err)
		}
	}
	if !h.Marker {
		return AccessUnit{}, false, lossErr
	}
	if d.broken || d.inFU || len(d.au) == 0 {
		d.drop()
		d.needKey = true
		if lossErr == nil {
			lossErr = fmt.Errorf("rtph264: access unit ts %d incomplete: %w", d.ts, capture.ErrMediaLost)
		}
		return AccessUnit{}, false, lossErr
	}
	d.active = false
	if !d.wellFormed() {
		d.stats.Bad++
		d.stats.LostUnits++
		d.needKey = true
		return AccessUnit{}, false, joinErr(lossErr, fmt.Errorf("rtph264: %w: access unit ts %d has malformed NAL units: %w", capture.ErrBadPacket, d.ts, capture.ErrMediaLost))
	}
	if d.needKey && !d.keyframe {
		d.stats.Skipped++
		return AccessUnit{}, false, lossErr
	}
	d.needKey = false
	d.out = append(d.out[:0], d.au...)
	d.stats.AccessUnits++
	return AccessUnit{Data: d.out, Timestamp: d.ts, Keyframe: d.keyframe, CaptureTime: d.captured}, true, lossErr
}

// add checks the packet's structure (pion's H264Packet does not check FU
// start and end bits) and appends its NAL units.
func (d *Depacketizer) add(pl []byte) error {
	t := pl[0] & 0x1F
	switch {
	case t >= 1 && t <= 23:
		if d.inFU {
			return fmt.Errorf("rtph264: %w: NAL unit inside a fragmented one", capture.ErrBadPacket)
		}
		d.noteType(t)
		d.nalCount++
	case t == nalSTAPA:
		if d.inFU {
			return fmt.Errorf("rtph264: %w: STAP-A inside a fragmented NAL unit", capture.ErrBadPacket)
		}
		for o := 1; o+2 <= len(pl); {
			n := int(binary.BigEndian.Uint16(pl[o:]))
			o += 2
			if n == 0 || o+n > len(pl) {
				return fmt.Errorf("rtph264: %w: STAP-A size", capture.ErrBadPacket)
			}
			d.noteType(pl[o] & 0x1F)
			d.nalCount++
			o += n
		}
	case t == nalFUA:
		if len(pl) < 3 {
			return fmt.Errorf("rtph264: %w: short FU-A", capture.ErrBadPacket)
		}
		start, end := pl[1]&fuStart != 0, pl[1]&fuEnd != 0
		if start == d.inFU {
			return fmt.Errorf("rtph264: %w: FU-A start bit out of sequence", capture.ErrBadPacket)
		}
		d.inFU = !end
		d.noteType(pl[1] & 0x1F)
		if end {
			d.nalCount++
		}
	default:
		return fmt.Errorf("rtph264: %w: packet type %d not in packetization mode 1", capture.ErrBadPacket, t)
	}
	out, err := d.h264.Unmarshal(pl)
	if err != nil {
		return fmt.Errorf("rtph264: %w: %w", capture.ErrBadPacket, err)
	}
	d.au = append(d.au, out...)
	return nil
}

// wellFormed checks the assembled access unit the way a decoder's byte
// stream parser will see it: exactly the NAL units that arrived, none with
// the forbidden bit, none containing a start code (H.264 7.4.1 forbids
// 0x000000-0x000002 inside a NAL unit) or ending in a zero byte.
func (d *Depacketizer) wellFormed() bool {
	nals, err := SplitAnnexB(d.nals[:0], d.au)
	d.nals = nals
	if err != nil || len(nals) != d.nalCount {
		return false
	}
	total := 0
	for _, n := range nals {
		total += 4 + len(n)
	}
	return total == len(d.au)
}

func (d *Depacketizer) noteType(t byte) {
	if t == nalIDR {
		d.keyframe = true
	}
}

func (d *Depacketizer) drop() {
	if d.active {
		d.stats.LostUnits++
	}
	d.active, d.broken, d.inFU = false, false, false
	d.au = d.au[:0]
}

func joinErr(a, b error) error {
	if a == nil {
		return b
	}
	return fmt.Errorf("%w; %w", a, b)
}
