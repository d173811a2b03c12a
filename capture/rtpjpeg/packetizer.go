package rtpjpeg

import (
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// Sizes of the RFC 2435 headers that follow the RTP header.
const (
	mainHeaderSize    = 8       // type-specific, fragment offset, type, Q, width, height
	restartHeaderSize = 4       // restart interval, F, L, restart count
	qtHeaderSize      = 4       // MBZ, precision, length
	qtBytes           = 2 * 64  // two 8-bit tables
	maxFragmentOffset = 1 << 24 // 24-bit field
	// qInBand is the Q value that means "tables in-band, may change every
	// frame": camera tables vary with the scene on many UVC devices.
	qInBand = 255
)

// MinPacketSize is the smallest max packet size the packetizer accepts: the
// first packet of a frame must hold the RTP header with abs-capture-time,
// the JPEG, restart and quantization table headers, the tables and one byte.
const MinPacketSize = rtpext.HeaderSize + mainHeaderSize + restartHeaderSize + qtHeaderSize + qtBytes + 1

// Packetizer turns JPEG frames into RFC 2435 RTP packets. It implements
// capture.VideoPacketizer. Steady-state packetizing allocates nothing: the
// packets live in one buffer that is reused (and grown only for a larger
// frame than any before).
type Packetizer struct {
	maxSize int
	hdr     rtp.Header
	ext     [rtpext.AbsCaptureTimeSize]byte
	clock   *rtpext.Clock
	lastTS  uint32
	started bool
	buf     []byte
	pkts    [][]byte
}

// NewPacketizer returns a JPEG packetizer producing RTP packets of at most
// maxSize bytes (0 means capture.DefaultMaxPacketSize) with the given SSRC
// and payload type (capture.PayloadTypeJPEG, the static 26, unless
// negotiated otherwise). Sequence numbers and timestamps start at random
// values.
func NewPacketizer(maxSize int, ssrc uint32, pt uint8) (*Packetizer, error) {
	maxSize, hdr, err := capture.NewRTPHeader(maxSize, MinPacketSize, ssrc, pt)
	if err != nil {
		return nil, fmt.Errorf("rtpjpeg: %w", err)
	}
	p := &Packetizer{maxSize: maxSize, hdr: hdr, clock: rtpext.NewClock(capture.VideoClockRate)}
	return p, nil
}

// SetStart fixes the next sequence number and the first RTP timestamp, for
// senders that announce them and for tests.
func (p *Packetizer) SetStart(seq uint16, ts uint32) {
	p.hdr.SequenceNumber = seq
	p.clock = rtpext.NewClockAt(capture.VideoClockRate, ts)
	p.started = false
}

// Packetize parses f.Data (see ParseJPEG for what is accepted) and returns
// the frame's packets; the first carries abs-capture-time and the
// quantization tables, the last the marker bit.
func (p *Packetizer) Packetize(f capture.VideoFrame) (capture.Burst, error) {
	if f.Codec != capture.CodecJPEG {
		return capture.Burst{}, fmt.Errorf("%w: %v", ErrCodec, f.Codec)
	}
	im, err := ParseJPEG(f.Data)
	if err != nil {
		return capture.Burst{}, err
	}
	return p.packetize(&im, f)
}

func (p *Packetizer) packetize(im *Image, f capture.VideoFrame) (capture.Burst, error) {
	rh := 0
	if im.Type >= 64 {
		rh = restartHeaderSize
	}
	first := p.maxSize - rtpext.HeaderSize - mainHeaderSize - rh - qtHeaderSize - qtBytes
	rest := p.maxSize - rtpext.BareHeaderSize - mainHeaderSize - rh
	scan := im.Scan
	npkt := 1
	if len(scan) > first {
		npkt += (len(scan) - first + rest - 1) / rest
	}
	need := rtpext.HeaderSize + qtHeaderSize + qtBytes + npkt*(rtpext.BareHeaderSize+mainHeaderSize+rh) + len(scan)
	if cap(p.buf) < need {
		p.buf = make([]byte, need)
	}
	buf := p.buf[:need]
	if cap(p.pkts) < npkt {
		p.pkts = make([][]byte, 0, npkt)
	}
	p.pkts = p.pkts[:0]

	// Timestamps from the capture clock; strictly increasing, because a
	// receiver tells frames apart by timestamp.
	ts := p.clock.Timestamp(f.CaptureTime)
	if p.started && int32(ts-p.lastTS) <= 0 {
		ts = p.lastTS + 1
	}
	p.started, p.lastTS = true, ts
	p.hdr.Timestamp = ts

	off, sent := 0, 0
	for k := 0; k < npkt; k++ {
		capacity := rest
		if k == 0 {
			capacity = first
			if err := rtpext.SetAbsCaptureTime(&p.hdr, &p.ext, f.CaptureTime); err != nil {
				return capture.Burst{}, fmt.Errorf("rtpjpeg: %w", err)
			}
		} else if k == 1 {
			p.hdr.ClearExtensions()
		}
		chunk := scan[sent:min(sent+capacity, len(scan))]
		p.hdr.Marker = k == npkt-1
		start := off
		n, err := p.hdr.MarshalTo(buf[off:])
		if err != nil {
			return capture.Burst{}, fmt.Errorf("rtpjpeg: marshal header: %w", err)
		}
		off += n
		// RFC 2435 section 3.1: main JPEG header.
		buf[off] = 0
		buf[off+1] = byte(sent >> 16)
		buf[off+2] = byte(sent >> 8)
		buf[off+3] = byte(sent)
		buf[off+4] = im.Type
		buf[off+5] = qInBand
		buf[off+6] = byte(im.Width / 8)
		buf[off+7] = byte(im.Height / 8)
		off += mainHeaderSize
		if rh > 0 {
			// Section 3.1.7: F=L=1 and count 0x3FFF say that packets are
			// not aligned to restart intervals; receivers reassemble the
			// whole frame as usual.
			buf[off] = byte(im.RestartInterval >> 8)
			buf[off+1] = byte(im.RestartInterval)
			buf[off+2] = 0xFF
			buf[off+3] = 0xFF
			off += restartHeaderSize
		}
		if k == 0 {
			// Section 3.1.8: tables in the first packet, luminance first.
			buf[off] = 0
			buf[off+1] = 0 // precision: 8-bit tables
			buf[off+2] = 0
			buf[off+3] = qtBytes
			off += qtHeaderSize
			off += copy(buf[off:], im.QTables[0])
			off += copy(buf[off:], im.QTables[1])
		}
		off += copy(buf[off:], chunk)
		sent += len(chunk)
		p.pkts = append(p.pkts, buf[start:off])
		p.hdr.SequenceNumber++
	}
	p.hdr.ClearExtensions()
	return capture.Burst{Kind: capture.KindVideo, Packets: p.pkts, Keyframe: true, CaptureTime: f.CaptureTime}, nil
}
