package pcmu

import (
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// maxMisorder is how far behind the newest sequence number a packet may be
// and still count as late (the bound of RFC 3550 appendix A.1).
const maxMisorder = 100

// Chunk is the decoded audio of one PCMU packet.
type Chunk struct {
	Samples        []int16 // 8 kHz mono; owned by the depacketizer, valid until the next Push
	Timestamp      uint32  // RTP timestamp of the first sample
	SequenceNumber uint16
	CaptureTime    time.Time // from abs-capture-time; zero when the packet had none
	// LostPackets is how many packets were missing (sequence gap) between
	// the previous chunk and this one.
	LostPackets int
	// GapSamples is how many samples of time passed between the end of the
	// previous chunk and the start of this one (lost packets or a sender
	// pause); a player fills them with silence or concealment.
	GapSamples int
}

// Stats counts what a Depacketizer saw.
type Stats struct {
	Packets     uint64 // chunks emitted
	LostPackets uint64 // by sequence gaps
	Late        uint64 // duplicates and packets older than one already emitted
	Bad         uint64 // malformed packets
}

// Depacketizer decodes PCMU RTP packets. Packets that arrive late (after a
// newer one) are dropped rather than played out of order; gaps are reported
// per chunk and counted.
type Depacketizer struct {
	pkt     rtp.Packet
	pcm     []int16
	started bool
	ssrc    uint32
	lastSeq uint16
	nextTS  uint32
	stats   Stats
}

// NewDepacketizer returns an empty PCMU depacketizer.
func NewDepacketizer() *Depacketizer {
	return &Depacketizer{pcm: make([]int16, 0, SamplesPerPacket)}
}

// Stats returns the counters so far.
func (d *Depacketizer) Stats() Stats { return d.stats }

// Push decodes one marshalled RTP packet (see the convention in package
// capture). err wraps capture.ErrMediaLost when packets were lost before
// this one; the chunk is still valid then.
func (d *Depacketizer) Push(b []byte) (Chunk, bool, error) {
	if err := d.pkt.Unmarshal(b); err != nil {
		d.stats.Bad++
		return Chunk{}, false, fmt.Errorf("pcmu: %w: %w", capture.ErrBadPacket, err)
	}
	h := &d.pkt.Header
	if h.Version != 2 {
		d.stats.Bad++
		return Chunk{}, false, fmt.Errorf("pcmu: %w: RTP version %d", capture.ErrBadPacket, h.Version)
	}
	if len(d.pkt.Payload) == 0 {
		d.stats.Bad++
		return Chunk{}, false, fmt.Errorf("pcmu: %w: empty payload", capture.ErrBadPacket)
	}
	c := Chunk{Timestamp: h.Timestamp, SequenceNumber: h.SequenceNumber}
	// Another SSRC, or a jump far back (the sender restarted its
	// numbering), starts a new stream instead of counting as late.
	if diff := int16(h.SequenceNumber - d.lastSeq); d.started && h.SSRC == d.ssrc && diff > -maxMisorder {
		if diff <= 0 {
			d.stats.Late++
			return Chunk{}, false, nil
		}
		c.LostPackets = int(diff) - 1
		if g := int32(h.Timestamp - d.nextTS); g > 0 {
			c.GapSamples = int(g)
		}
	}
	d.started, d.ssrc, d.lastSeq = true, h.SSRC, h.SequenceNumber
	d.nextTS = h.Timestamp + uint32(len(d.pkt.Payload))
	if t, ok := rtpext.HeaderAbsCaptureTime(h); ok {
		c.CaptureTime = t
	}
	if cap(d.pcm) < len(d.pkt.Payload) {
		d.pcm = make([]int16, len(d.pkt.Payload))
	}
	c.Samples = Decode(d.pcm[:cap(d.pcm)], d.pkt.Payload)
	d.stats.Packets++
	if c.LostPackets > 0 {
		d.stats.LostPackets += uint64(c.LostPackets)
		return c, true, fmt.Errorf("pcmu: %d packets before seq %d: %w", c.LostPackets, h.SequenceNumber, capture.ErrMediaLost)
	}
	return c, true, nil
}
