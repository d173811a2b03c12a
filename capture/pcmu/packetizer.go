package pcmu

import (
	"errors"
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// Rate is PCMU's sample rate and RTP clock rate.
const Rate = capture.PCMUClockRate

// SamplesPerPacket is 20 ms at 8 kHz.
const SamplesPerPacket = Rate / 50

// ErrEmptyChunk reports a chunk without samples or without a rate.
var ErrEmptyChunk = errors.New("pcmu: empty audio chunk")

// Packetizer turns 20 ms S16 chunks of any rate into PCMU RTP packets, one
// per chunk when the packet size allows (160 samples need 188 bytes with
// the abs-capture-time header), each with abs-capture-time. It implements
// capture.AudioPacketizer.
type Packetizer struct {
	maxPayload int
	hdr        rtp.Header
	ext        [rtpext.AbsCaptureTimeSize]byte
	clock      *rtpext.Clock
	rs         *Resampler
	next       uint32 // RTP timestamp the next chunk has when contiguous
	started    bool
	buf        []byte
	pkts       [][]byte
}

// NewPacketizer returns a PCMU packetizer producing RTP packets of at most
// maxSize bytes (0 means capture.DefaultMaxPacketSize) with the given SSRC
// and payload type (capture.PayloadTypePCMU unless negotiated otherwise).
// Sequence numbers and timestamps start at random values.
func NewPacketizer(maxSize int, ssrc uint32, pt uint8) (*Packetizer, error) {
	maxSize, hdr, err := capture.NewRTPHeader(maxSize, rtpext.HeaderSize+1, ssrc, pt)
	if err != nil {
		return nil, fmt.Errorf("pcmu: %w", err)
	}
	p := &Packetizer{
		maxPayload: maxSize - rtpext.HeaderSize,
		hdr:        hdr,
		clock:      rtpext.NewClock(Rate),
	}
	return p, nil
}

// SetStart fixes the next sequence number and the first RTP timestamp, for
// senders that announce them (RTSP RTP-Info) and for tests.
func (p *Packetizer) SetStart(seq uint16, ts uint32) {
	p.hdr.SequenceNumber = seq
	p.clock = rtpext.NewClockAt(Rate, ts)
	p.started = false
}

// Packetize resamples c to 8 kHz, encodes it and returns its packets.
func (p *Packetizer) Packetize(c capture.AudioChunk) (capture.Burst, error) {
	if len(c.Samples) == 0 || c.Rate <= 0 {
		return capture.Burst{}, ErrEmptyChunk
	}
	pcm := c.Samples // already 8 kHz: nothing to filter
	at := c.CaptureTime
	if c.Rate != Rate {
		if p.rs == nil || p.rs.InRate() != c.Rate {
			rs, err := NewResampler(c.Rate, Rate)
			if err != nil {
				return capture.Burst{}, fmt.Errorf("pcmu: %w", err)
			}
			p.rs = rs
		}
		pcm = p.rs.Process(c.Samples)
		// Stamp what the samples are: the filter delays the signal.
		at = at.Add(p.rs.Offset())
	}
	if len(pcm) == 0 {
		// Very short chunk: the samples stay in the filter for the next call.
		return capture.Burst{Kind: capture.KindAudio, CaptureTime: c.CaptureTime}, nil
	}
	// Timestamps follow the capture clock, but jitter in when a driver
	// stamps its chunks must not make the RTP timeline wobble: within half a
	// packet of the contiguous value, use the contiguous value.
	ts := p.clock.Timestamp(at)
	contiguous := false
	if p.started {
		if d := int32(ts - p.next); d > -SamplesPerPacket/2 && d < SamplesPerPacket/2 {
			ts, contiguous = p.next, true
		}
	}
	p.started = true
	p.next = ts + uint32(len(pcm))

	npkt := (len(pcm) + p.maxPayload - 1) / p.maxPayload
	need := npkt*rtpext.HeaderSize + len(pcm)
	if cap(p.buf) < need {
		p.buf = make([]byte, need)
	}
	p.buf = p.buf[:need]
	p.pkts = p.pkts[:0]
	off := 0
	for i := 0; i < len(pcm); i += p.maxPayload {
		part := pcm[i:min(i+p.maxPayload, len(pcm))]
		p.hdr.Timestamp = ts + uint32(i)
		// RFC 3551 section 4.1: the marker bit flags the first packet after
		// a discontinuity, so a receiver may resynchronise its playout.
		p.hdr.Marker = i == 0 && !contiguous
		if err := rtpext.SetAbsCaptureTime(&p.hdr, &p.ext, at.Add(time.Duration(i)*time.Second/Rate)); err != nil {
			return capture.Burst{}, fmt.Errorf("pcmu: %w", err)
		}
		n, err := p.hdr.MarshalTo(p.buf[off:])
		if err != nil {
			return capture.Burst{}, fmt.Errorf("pcmu: marshal header: %w", err)
		}
		Encode(p.buf[off+n:], part)
		p.pkts = append(p.pkts, p.buf[off:off+n+len(part)])
		off += n + len(part)
		p.hdr.SequenceNumber++
	}
	return capture.Burst{Kind: capture.KindAudio, Packets: p.pkts, Keyframe: true, CaptureTime: c.CaptureTime}, nil
}
