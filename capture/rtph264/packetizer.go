// Package rtph264 carries H.264 over RTP as RFC 6184 specifies, in
// packetization mode 1 (non-interleaved): single NAL unit packets, STAP-A
// for the parameter sets and FU-A for NAL units larger than a packet.
//
// The packetizer follows pion's codecs.H264Payloader packet for packet (the
// tests check that pion's depacketizer reads it back) but writes into owned
// buffers, so steady-state packetizing allocates nothing; pion's payloader
// allocates every payload. It also caches the last SPS and PPS and puts them
// in front of every IDR that lacks them, so a receiver that joins, or
// recovers from loss, at any IDR can decode. The depacketizer uses pion's
// codecs.H264Packet and emits whole access units only.
package rtph264

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// NAL unit types (H.264 table 7-1) and RFC 6184 packet types.
const (
	nalSlice    = 1
	nalIDR      = 5
	nalSEI      = 6
	nalSPS      = 7
	nalPPS      = 8
	nalAUD      = 9
	nalFiller   = 12
	nalSTAPA    = 24
	nalFUA      = 28
	fuStart     = 0x80
	fuEnd       = 0x40
	stapAHeader = 0x78 // F=0, NRI=3, type 24, as pion writes it
)

// Errors of the packetizer.
var (
	ErrCodec       = errors.New("rtph264: frame is not H.264")
	ErrNotAnnexB   = errors.New("rtph264: access unit is not in Annex B byte-stream form")
	ErrNoParamSets = errors.New("rtph264: IDR without SPS/PPS, and none seen before")
	ErrEmptyAU     = errors.New("rtph264: access unit has no NAL units")
	ErrNALType     = errors.New("rtph264: NAL unit type unspecified in H.264 (0, 24-31)")
)

// MinPacketSize is the smallest max packet size accepted: an FU-A packet
// with abs-capture-time and one byte of NAL unit.
const MinPacketSize = rtpext.HeaderSize + 2 + 1

// Packetizer turns H.264 access units (Annex B) into RFC 6184 packets. It
// implements capture.VideoPacketizer.
type Packetizer struct {
	maxSize  int
	hdr      rtp.Header
	ext      [rtpext.AbsCaptureTimeSize]byte
	clock    *rtpext.Clock
	lastTS   uint32
	started  bool
	sps, pps paramCache // the latest parameter sets, for IDRs without them
	run      [][]byte   // consecutive parameter sets waiting to be sent
	nals     [][]byte
	buf      []byte
	pkts     [][]byte
}

// NewPacketizer returns an H.264 packetizer producing RTP packets of at most
// maxSize bytes (0 means capture.DefaultMaxPacketSize) with the given SSRC
// and payload type (capture.PayloadTypeH264 unless negotiated otherwise).
func NewPacketizer(maxSize int, ssrc uint32, pt uint8) (*Packetizer, error) {
	maxSize, hdr, err := capture.NewRTPHeader(maxSize, MinPacketSize, ssrc, pt)
	if err != nil {
		return nil, fmt.Errorf("rtph264: %w", err)
	}
	p := &Packetizer{maxSize: maxSize, hdr: hdr, clock: rtpext.NewClock(capture.VideoClockRate)}
	return p, nil
}

// SetStart fixes the next sequence number and the first RTP timestamp.
func (p *Packetizer) SetStart(seq uint16, ts uint32) {
	p.hdr.SequenceNumber = seq
	p.clock = rtpext.NewClockAt(capture.VideoClockRate, ts)
	p.started = false
}

// Packetize returns the packets of one access unit; the first carries
// abs-capture-time, the last the marker bit. Access unit delimiters and
// filler data are dropped, as pion does.
func (p *Packetizer) Packetize(f capture.VideoFrame) (capture.Burst, error) {
	if f.Codec != capture.CodecH264 {
		return capture.Burst{}, fmt.Errorf("%w: %v", ErrCodec, f.Codec)
	}
	nals, err := SplitAnnexB(p.nals[:0], f.Data)
	p.nals = nals
	if err != nil {
		return capture.Burst{}, err
	}
	hasSPS, hasPPS, idr := false, false, false
	for _, n := range nals {
		switch n[0] & 0x1F {
		case nalSPS:
			hasSPS = true
		case nalPPS:
			hasPPS = true
		case nalIDR:
			idr = true
		}
	}
	if hasSPS {
		p.sps.store(nals, nalSPS)
	}
	if hasPPS {
		p.pps.store(nals, nalPPS)
	}
	// An IDR that lacks parameter sets gets the cached ones in front.
	insertSPS, insertPPS := idr && !hasSPS, idr && !hasPPS
	if (insertSPS && len(p.sps.list) == 0) || (insertPPS && len(p.pps.list) == 0) {
		return capture.Burst{}, ErrNoParamSets
	}

	ts := p.clock.Timestamp(f.CaptureTime)
	if p.started && int32(ts-p.lastTS) <= 0 {
		ts = p.lastTS + 1
	}
	p.started, p.lastTS = true, ts
	p.hdr.Timestamp = ts
	p.hdr.Marker = false
	if err := rtpext.SetAbsCaptureTime(&p.hdr, &p.ext, f.CaptureTime); err != nil {
		return capture.Burst{}, fmt.Errorf("rtph264: %w", err)
	}
	p.buf = p.buf[:0]
	p.pkts = p.pkts[:0]
	p.run = p.run[:0]
	for _, n := range nals {
		switch t := n[0] & 0x1F; {
		case t == nalAUD || t == nalFiller:
			continue
		case t == nalSPS || t == nalPPS:
			p.run = append(p.run, n)
			continue
		case t == nalIDR && (insertSPS || insertPPS):
			if insertSPS {
				p.run = append(p.run, p.sps.list...)
			}
			if insertPPS {
				p.run = append(p.run, p.pps.list...)
			}
			insertSPS, insertPPS = false, false
		}
		p.flushRun()
		p.nal(n)
	}
	p.flushRun()
	if len(p.pkts) == 0 {
		p.hdr.ClearExtensions()
		return capture.Burst{}, ErrEmptyAU
	}
	// Marker bit on the access unit's last packet (RFC 6184 5.1).
	last := p.pkts[len(p.pkts)-1]
	last[1] |= 0x80
	p.hdr.ClearExtensions()
	return capture.Burst{Kind: capture.KindVideo, Packets: p.pkts, Keyframe: idr, CaptureTime: f.CaptureTime}, nil
}

// paramCache holds copies of the SPS (or PPS) NAL units of the latest
// access unit that had any; a stream may use several, with different IDs.
type paramCache struct {
	buf  []byte
	list [][]byte
}

func (c *paramCache) store(nals [][]byte, typ byte) {
	c.buf, c.list = c.buf[:0], c.list[:0]
	for _, n := range nals {
		if n[0]&0x1F == typ {
			c.buf = append(c.buf, n...)
		}
	}
	off := 0
	for _, n := range nals {
		if n[0]&0x1F == typ {
			c.list = append(c.list, c.buf[off:off+len(n):off+len(n)])
			off += len(n)
		}
	}
}

// room returns the payload bytes the next packet can carry.
func (p *Packetizer) room() int { return p.maxSize - p.hdr.MarshalSize() }

// begin appends the next packet's RTP header and returns its start.
func (p *Packetizer) begin(payload int) int {
	start := len(p.buf)
	n := p.hdr.MarshalSize()
	p.buf = grow(p.buf, n+payload)
	// MarshalTo cannot fail: the buffer was sized from MarshalSize.
	_, _ = p.hdr.MarshalTo(p.buf[start:])
	return start
}

func (p *Packetizer) end(start int) {
	p.pkts = append(p.pkts, p.buf[start:len(p.buf):len(p.buf)])
	p.hdr.SequenceNumber++
	if len(p.pkts) == 1 {
		p.hdr.ClearExtensions()
	}
}

// flushRun sends the waiting parameter sets: as many as fit together in
// one STAP-A (RFC 6184 5.7.1), as pion does for SPS and PPS, and a lone one
// that fits with no other as a single NAL unit packet (or FU-A).
func (p *Packetizer) flushRun() {
	run := p.run
	for len(run) > 0 {
		size, k := 1, 0
		for k < len(run) && size+2+len(run[k]) <= p.room() {
			size += 2 + len(run[k])
			k++
		}
		if k < 2 {
			p.nal(run[0])
			run = run[1:]
			continue
		}
		start := p.begin(size)
		b := p.buf[len(p.buf)-size:]
		b[0] = stapAHeader
		o := 1
		for _, n := range run[:k] {
			b[o], b[o+1] = byte(len(n)>>8), byte(len(n))
			o += 2 + copy(b[o+2:], n)
		}
		p.end(start)
		run = run[k:]
	}
	p.run = p.run[:0]
}

// nal sends one NAL unit as a single NAL unit packet or as FU-A fragments
// (RFC 6184 5.8).
func (p *Packetizer) nal(n []byte) {
	if len(n) <= p.room() {
		start := p.begin(len(n))
		copy(p.buf[len(p.buf)-len(n):], n)
		p.end(start)
		return
	}
	indicator := n[0]&0x60 | nalFUA // NRI of the NAL unit, type 28
	typ := n[0] & 0x1F
	body := n[1:]
	for first := true; len(body) > 0; first = false {
		k := min(p.room()-2, len(body))
		start := p.begin(2 + k)
		b := p.buf[len(p.buf)-2-k:]
		b[0] = indicator
		b[1] = typ
		if first {
			b[1] |= fuStart
		}
		if k == len(body) {
			b[1] |= fuEnd
		}
		copy(b[2:], body[:k])
		body = body[k:]
		p.end(start)
	}
}

// grow extends b by n bytes, reallocating if needed. Packets already handed
// out keep pointing into the old array, which stays valid.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

var startCode = []byte{0, 0, 1}

// SplitAnnexB appends to dst the NAL units of an Annex B byte stream
// (start codes 00 00 01 or 00 00 00 01, trailing zero bytes removed) and
// returns it. The NAL units point into data.
func SplitAnnexB(dst [][]byte, data []byte) ([][]byte, error) {
	i := bytes.Index(data, startCode)
	if i < 0 {
		return dst, ErrNotAnnexB
	}
	// Only zero bytes may precede the first start code.
	for _, b := range data[:i] {
		if b != 0 {
			return dst, ErrNotAnnexB
		}
	}
	i += 3
	for {
		j := bytes.Index(data[i:], startCode)
		end := len(data)
		next := -1
		if j >= 0 {
			end = i + j
			next = end + 3
		}
		n := data[i:end]
		for len(n) > 0 && n[len(n)-1] == 0 {
			n = n[:len(n)-1]
		}
		if len(n) > 0 {
			if n[0]&0x80 != 0 {
				return dst, fmt.Errorf("%w: forbidden_zero_bit set", ErrNotAnnexB)
			}
			if t := n[0] & 0x1F; t == 0 || t >= nalSTAPA {
				// Unspecified in H.264; RFC 6184 gives 24-29 to its packet
				// types, so a receiver would misread such a NAL unit.
				return dst, fmt.Errorf("%w: %d", ErrNALType, t)
			}
			dst = append(dst, n)
		}
		if next < 0 {
			break
		}
		i = next
	}
	if len(dst) == 0 {
		return dst, ErrEmptyAU
	}
	return dst, nil
}
