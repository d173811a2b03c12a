package webrtc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"
)

// sender is one media kind of one peer: a pion TrackLocal that the relay's
// session writes to (relay.PacketConn). It rewrites each packet of the
// shared stream into this client's RTP stream: its SSRC and payload type,
// sequence numbers without gaps (a unit the policy dropped leaves none, so
// the client never asks for what the policy chose not to send), the
// transport-wide sequence number whose feedback is the Health Check, and
// abs-capture-time under the client's extension ID. Everything it needs is
// preallocated: writing a packet allocates nothing.
type sender struct {
	p    *peer
	kind capture.Kind
	id   string

	mu     sync.Mutex // bind state and the writer's header; NACKs take it too
	bound  bool
	ws     pion.TrackLocalWriter
	ssrc   uint32
	pt     uint8
	opus   bool // audio: the session took Opus
	twccID uint8
	absID  uint8

	// Owned by the writer (under mu).
	hdr    rtp.Header
	twBuf  [2]byte
	absBuf [rtpext.AbsCaptureTimeSize]byte
	seq    uint16 // the client's next sequence number
	// sent maps the client's sequence numbers to the stream's, for NACKs.
	sent     [historySize]seqPair
	packets  uint32
	octets   uint32
	lastNTP  uint64 // capture time and RTP timestamp of the last frame sent,
	lastTS   uint32 // for sender reports
	haveLast bool
	now      int64   // the write's time, Unix ns
	rtxTok   float64 // retransmission tokens
	rtxLast  int64

	client atomic.Pointer[relay.Client]
}

type seqPair struct {
	client, stream uint16
	ok             bool
	at             int64 // when it was sent, Unix ns
}

// Retransmissions are outside the policy's window, so they are bounded:
// a packet older than rtxMaxAge would arrive too late to be shown, and a
// client gets at most rtxPerSecond (a burst of rtxBurst) so that NACKs
// from a congested link cannot add to its load.
const (
	rtxMaxAge    = 400 * time.Millisecond
	rtxPerSecond = 100
	rtxBurst     = 50
)

func newSender(p *peer, kind capture.Kind) *sender {
	s := &sender{p: p, kind: kind, id: kind.String(), seq: uint16(rtpext.Random32())}
	s.hdr.Extensions = make([]rtp.Extension, 0, 2)
	return s
}

// Bind is called by pion once the answer is set: it learns the negotiated
// payload type, SSRC and extension IDs.
func (s *sender) Bind(ctx pion.TrackLocalContext) (pion.RTPCodecParameters, error) {
	wants := []string{pion.MimeTypeH264}
	if s.kind == capture.KindAudio {
		// Opus when both sides have it (the server registers it only when
		// the box publishes it), else PCMU.
		wants = []string{pion.MimeTypeOpus, pion.MimeTypePCMU}
	}
	for _, want := range wants {
		for _, c := range ctx.CodecParameters() {
			if !strings.EqualFold(c.MimeType, want) {
				continue
			}
			s.mu.Lock()
			s.bound = true
			s.opus = want == pion.MimeTypeOpus
			s.ws = ctx.WriteStream()
			s.ssrc = uint32(ctx.SSRC())
			s.pt = uint8(c.PayloadType)
			for _, e := range ctx.HeaderExtensions() {
				switch e.URI {
				case sdp.TransportCCURI:
					s.twccID = uint8(e.ID)
				case rtpext.AbsCaptureTimeURI:
					s.absID = uint8(e.ID)
				}
			}
			s.mu.Unlock()
			return c, nil
		}
	}
	return pion.RTPCodecParameters{}, fmt.Errorf("webrtc: the %s offer has no %s", s.kind, strings.Join(wants, " or "))
}

// isOpus reports whether the audio session negotiated Opus.
func (s *sender) isOpus() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opus
}

// Unbind is called when the peer closes.
func (s *sender) Unbind(pion.TrackLocalContext) error {
	s.mu.Lock()
	s.bound = false
	s.mu.Unlock()
	return nil
}

func (s *sender) ID() string       { return s.id }
func (s *sender) RID() string      { return "" }
func (s *sender) StreamID() string { return "callbox" }
func (s *sender) Kind() pion.RTPCodecType {
	if s.kind == capture.KindAudio {
		return pion.RTPCodecTypeAudio
	}
	return pion.RTPCodecTypeVideo
}

var errUnbound = errors.New("webrtc: track not bound")

// WriteUnits is relay.PacketConn's: the session's writer goroutine sends a
// round of whole units.
func (s *sender) WriteUnits(units []*relay.Unit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bound {
		return errUnbound
	}
	s.now = time.Now().UnixNano()
	for _, u := range units {
		if s.kind == capture.KindVideo {
			s.p.srv.hist.add(u)
		}
		for i := 0; i < u.Packets(); i++ {
			if err := s.writeLocked(u.Packet(i), false, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLocked sends one packet of the stream as this client's packet. For
// a retransmission, seq is the client sequence number it had.
func (s *sender) writeLocked(pkt []byte, rtx bool, seq uint16) error {
	hl, payload, capNTP, hasCap, err := parseRTP(pkt)
	if err != nil {
		return err
	}
	_ = hl
	h := &s.hdr
	h.Version = 2
	h.Padding = false
	h.Marker = pkt[1]&0x80 != 0
	h.PayloadType = s.pt
	h.Timestamp = binary.BigEndian.Uint32(pkt[4:])
	h.SSRC = s.ssrc
	h.CSRC = nil
	h.Extension = false
	h.Extensions = h.Extensions[:0]
	if rtx {
		h.SequenceNumber = seq
	} else {
		h.SequenceNumber = s.seq
		e := &s.sent[s.seq%historySize]
		*e = seqPair{client: s.seq, stream: seqOf(pkt), ok: true, at: s.now}
		s.seq++
	}
	if s.twccID != 0 {
		tw := s.p.nextTWCC(s.kind, rtx, len(pkt), s.now)
		binary.BigEndian.PutUint16(s.twBuf[:], tw)
		_ = h.SetExtension(s.twccID, s.twBuf[:])
	}
	if hasCap {
		if s.absID != 0 {
			binary.BigEndian.PutUint64(s.absBuf[:], capNTP)
			_ = h.SetExtension(s.absID, s.absBuf[:])
		}
		if !rtx {
			s.lastNTP, s.lastTS, s.haveLast = capNTP, h.Timestamp, true
		}
	}
	if _, err := s.ws.WriteRTP(h, payload); err != nil {
		return err
	}
	s.packets++
	s.octets += uint32(len(payload))
	return nil
}

// retransmit resends the packets a NACK names (client sequence numbers)
// from the shared history; it reports how many it found.
func (s *sender) retransmit(seqs []uint16, buf []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bound {
		return 0
	}
	now := time.Now().UnixNano()
	s.now = now
	s.rtxTok = min(rtxBurst, s.rtxTok+float64(now-s.rtxLast)/1e9*rtxPerSecond)
	s.rtxLast = now
	n := 0
	for _, cs := range seqs {
		e := s.sent[cs%historySize]
		if !e.ok || e.client != cs || now-e.at > int64(rtxMaxAge) || s.rtxTok < 1 {
			continue
		}
		s.rtxTok--
		pkt, ok := s.p.srv.hist.copyPacket(buf[:0], e.stream)
		if !ok {
			continue
		}
		if s.writeLocked(pkt, true, cs) == nil {
			n++
		}
	}
	return n
}

// parseRTP finds the payload of a marshalled RTP packet and its
// abs-capture-time (callbox's one-byte extension ID 1), without allocating.
func parseRTP(pkt []byte) (hdrLen int, payload []byte, capNTP uint64, hasCap bool, err error) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return 0, nil, 0, false, errors.New("webrtc: not an RTP packet")
	}
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < n+4 {
			return 0, nil, 0, false, errors.New("webrtc: RTP extension header truncated")
		}
		profile := binary.BigEndian.Uint16(pkt[n:])
		words := int(binary.BigEndian.Uint16(pkt[n+2:]))
		end := n + 4 + 4*words
		if len(pkt) < end {
			return 0, nil, 0, false, errors.New("webrtc: RTP extension truncated")
		}
		if profile == 0xBEDE {
			for i := n + 4; i < end; {
				b := pkt[i]
				if b == 0 { // padding
					i++
					continue
				}
				id, l := b>>4, int(b&0x0f)+1
				if id == 15 {
					break
				}
				if i+1+l > end {
					break
				}
				if id == rtpext.AbsCaptureTimeID && l >= 8 {
					capNTP, hasCap = binary.BigEndian.Uint64(pkt[i+1:]), true
				}
				i += 1 + l
			}
		}
		n = end
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 && end > n {
		end -= int(pkt[end-1])
	}
	if end < n {
		return 0, nil, 0, false, errors.New("webrtc: RTP padding beyond the packet")
	}
	return n, pkt[n:end], capNTP, hasCap, nil
}
