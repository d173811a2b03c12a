//go:build cgo && !noopus

package opus

import (
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
	hopus "gopkg.in/hraban/opus.v2"
)

// Available reports whether this build has the Opus encoder.
const Available = true

// Packetizer turns 20 ms S16 chunks of any rate into Opus RTP packets, one
// 20 ms frame per packet (RFC 7587), each with abs-capture-time. Samples
// are buffered at 48 kHz so a resampler's uneven output still makes whole
// frames. It implements capture.AudioPacketizer; not safe for concurrent use.
type Packetizer struct {
	enc     *hopus.Encoder
	hdr     rtp.Header
	ext     [rtpext.AbsCaptureTimeSize]byte
	clock   *rtpext.Clock
	rs      *pcmu.Resampler
	pending []int16   // 48 kHz samples not yet encoded
	at      time.Time // capture time of pending[0]
	next    uint32
	started bool
	buf     []byte
	pkts    [][]byte
}

// NewPacketizer returns an Opus packetizer producing RTP packets of at
// most maxSize bytes (0 means capture.DefaultMaxPacketSize) with the given
// SSRC and payload type (PayloadType unless negotiated otherwise).
func NewPacketizer(maxSize int, ssrc uint32, pt uint8) (*Packetizer, error) {
	maxSize, hdr, err := capture.NewRTPHeader(maxSize, rtpext.HeaderSize+1, ssrc, pt)
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	enc, err := hopus.NewEncoder(Rate, 1, hopus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: encoder: %w", err)
	}
	if err := enc.SetBitrate(Bitrate); err != nil {
		return nil, fmt.Errorf("opus: bitrate: %w", err)
	}
	// The frame must fit one packet: cap what the encoder may produce.
	room := min(maxSize-rtpext.HeaderSize, maxFrameBytes)
	if room < 64 {
		return nil, fmt.Errorf("opus: packet size %d leaves %d bytes for a frame", maxSize, room)
	}
	return &Packetizer{enc: enc, hdr: hdr, clock: rtpext.NewClock(Rate), buf: make([]byte, 0, 4*(rtpext.HeaderSize+room)),
		pending: make([]int16, 0, 4*FrameSamples)}, nil
}

// SetLoss turns in-band FEC on (RFC 6716 LBRR: each packet carries a
// coarse copy of the previous frame) and tells the encoder how much loss
// to expect, in percent (a call sets it from the RTCP reports' fraction
// lost): the more loss, the more bits go to the redundant copy.
func (p *Packetizer) SetLoss(fec bool, lossPercent int) error {
	if err := p.enc.SetInBandFEC(fec); err != nil {
		return fmt.Errorf("opus: in-band FEC: %w", err)
	}
	if err := p.enc.SetPacketLossPerc(max(0, min(lossPercent, 100))); err != nil {
		return fmt.Errorf("opus: packet loss: %w", err)
	}
	return nil
}

// Recover rebuilds the 20 ms frame lost just before next from next's
// in-band FEC data (RFC 6716 LBRR); a packet encoded without FEC gives
// packet loss concealment instead. The samples are valid until the next
// call.
func (d *Decoder) Recover(next []byte) ([]int16, error) {
	pcm := d.pcm[:FrameSamples]
	if err := d.dec.DecodeFEC(next, pcm); err != nil {
		return nil, fmt.Errorf("opus: decode FEC: %w", err)
	}
	return pcm, nil
}

// Packetize resamples c to 48 kHz, encodes every whole 20 ms frame
// buffered and returns their packets (usually one).
func (p *Packetizer) Packetize(c capture.AudioChunk) (capture.Burst, error) {
	if len(c.Samples) == 0 || c.Rate <= 0 {
		return capture.Burst{}, ErrEmptyChunk
	}
	pcm, at := c.Samples, c.CaptureTime
	if c.Rate != Rate {
		if p.rs == nil || p.rs.InRate() != c.Rate {
			rs, err := pcmu.NewResampler(c.Rate, Rate)
			if err != nil {
				return capture.Burst{}, fmt.Errorf("opus: %w", err)
			}
			p.rs = rs
		}
		pcm = p.rs.Process(c.Samples)
		at = at.Add(p.rs.Offset())
	}
	if len(p.pending) == 0 {
		p.at = at
	}
	p.pending = append(p.pending, pcm...)
	p.pkts = p.pkts[:0]
	p.buf = p.buf[:0]
	for len(p.pending) >= FrameSamples {
		frameAt := p.at
		ts := p.clock.Timestamp(frameAt)
		contiguous := false
		if p.started {
			if d := int32(ts - p.next); d > -FrameSamples/2 && d < FrameSamples/2 {
				ts, contiguous = p.next, true
			}
		}
		p.started = true
		p.next = ts + FrameSamples
		p.hdr.Timestamp = ts
		p.hdr.Marker = !contiguous
		if err := rtpext.SetAbsCaptureTime(&p.hdr, &p.ext, frameAt); err != nil {
			return capture.Burst{}, fmt.Errorf("opus: %w", err)
		}
		off := len(p.buf)
		hl := p.hdr.MarshalSize()
		need := off + hl + maxFrameBytes
		if cap(p.buf) < need {
			// Earlier packets of this burst point into the old buffer;
			// they stay valid there.
			nb := make([]byte, off, 2*need)
			copy(nb, p.buf)
			p.buf = nb
		}
		p.buf = p.buf[:need]
		if _, err := p.hdr.MarshalTo(p.buf[off:]); err != nil {
			return capture.Burst{}, fmt.Errorf("opus: marshal header: %w", err)
		}
		n, err := p.enc.Encode(p.pending[:FrameSamples], p.buf[off+hl:])
		if err != nil {
			return capture.Burst{}, fmt.Errorf("opus: encode: %w", err)
		}
		p.buf = p.buf[:off+hl+n]
		p.pkts = append(p.pkts, p.buf[off:off+hl+n])
		p.hdr.SequenceNumber++
		p.pending = append(p.pending[:0], p.pending[FrameSamples:]...)
		p.at = frameAt.Add(20 * time.Millisecond)
	}
	return capture.Burst{Kind: capture.KindAudio, Packets: p.pkts, Keyframe: true, CaptureTime: c.CaptureTime}, nil
}
