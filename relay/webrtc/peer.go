package webrtc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtcp"
	pion "github.com/pion/webrtc/v4"
)

// twccRing maps transport-wide sequence numbers to what they carried; it
// must hold more packets than are ever in flight (the idle limits).
const twccRing = 4096

// What a transport-wide sequence number carried.
const (
	twNone  = 0
	twVideo = 1
	twAudio = 2
	twRTX   = 3 // a retransmission: outside the policy's idle count
)

// peer is one WHEP session: one PeerConnection with a video and an audio
// sender, each a session of the relay once the connection is up.
type peer struct {
	srv    *Server
	id     string
	token  string
	remote string
	pc     *pion.PeerConnection
	video  *sender
	audio  *sender
	start  time.Time

	twMu    sync.Mutex
	twNext  uint16 // next transport-wide sequence number
	twAcked uint16 // every number up to here has been covered by feedback
	twKind  [twccRing]uint8

	closing   atomic.Bool
	closeOnce sync.Once
	done      chan struct{}

	feedbacks, nacks, rtxSent, plis atomic.Uint64
}

// nextTWCC numbers a packet on the connection's transport-wide sequence
// and remembers what it carried.
func (p *peer) nextTWCC(kind capture.Kind, rtx bool) uint16 {
	p.twMu.Lock()
	n := p.twNext
	p.twNext++
	k := uint8(twAudio)
	switch {
	case rtx:
		k = twRTX
	case kind == capture.KindVideo:
		k = twVideo
	}
	p.twKind[n%twccRing] = k
	p.twMu.Unlock()
	return n
}

// feedback applies one transport-wide congestion control report: every
// packet up to the last one it covers is no longer in flight, received or
// reported lost, and counts as acknowledged for its kind's session (S13:
// idle_count -= N). Reports only move forward; a stale or reordered one
// acknowledges nothing.
func (p *peer) feedback(fb *rtcp.TransportLayerCC) {
	if fb.PacketStatusCount == 0 {
		return
	}
	last := fb.BaseSequenceNumber + fb.PacketStatusCount - 1
	var nv, na int
	p.twMu.Lock()
	ahead := int16(last - p.twAcked)
	sent := int16(p.twNext - 1 - p.twAcked)
	if ahead > sent {
		ahead = sent // cannot acknowledge what was never sent
	}
	for ; ahead > 0; ahead-- {
		p.twAcked++
		switch p.twKind[p.twAcked%twccRing] {
		case twVideo:
			nv++
		case twAudio:
			na++
		}
		p.twKind[p.twAcked%twccRing] = twNone
	}
	p.twMu.Unlock()
	p.feedbacks.Add(1)
	if c := p.video.client.Load(); c != nil && nv > 0 {
		c.Ack(nv)
	}
	if c := p.audio.client.Load(); c != nil && na > 0 {
		c.Ack(na)
	}
}

// readRTCP serves one sender's incoming RTCP until the peer closes:
// transport-wide feedback (the Health Check), PLI and FIR (a keyframe
// request, like a flush's), NACK (retransmission from the shared history).
func (p *peer) readRTCP(s *sender, rs *pion.RTPSender) {
	buf := make([]byte, 1500)
	rtx := make([]byte, 0, 1500)
	var seqs []uint16
	for {
		n, _, err := rs.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue // garbage from the network: SRTCP authenticated it, so a bug; ignore
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.TransportLayerCC:
				p.feedback(pkt)
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				if c := p.video.client.Load(); c != nil {
					c.RequestKeyframe()
				}
			case *rtcp.TransportLayerNack:
				if s.kind != capture.KindVideo {
					continue
				}
				p.nacks.Add(1)
				seqs = seqs[:0]
				for _, pair := range pkt.Nacks {
					for _, q := range pair.PacketList() {
						if len(seqs) < 64 { // bound what one NACK can cost
							seqs = append(seqs, q)
						}
					}
				}
				p.rtxSent.Add(uint64(s.retransmit(seqs, rtx)))
			}
		}
	}
}

// sendReports sends an RTCP sender report per sender every second, from
// the last frame's capture time and RTP timestamp, so the browser can line
// audio up with video.
func (p *peer) sendReports() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		var pkts []rtcp.Packet
		for _, s := range []*sender{p.video, p.audio} {
			s.mu.Lock()
			if s.bound && s.haveLast {
				pkts = append(pkts, &rtcp.SenderReport{SSRC: s.ssrc, NTPTime: s.lastNTP, RTPTime: s.lastTS,
					PacketCount: s.packets, OctetCount: s.octets})
			}
			s.mu.Unlock()
		}
		if len(pkts) > 0 {
			_ = p.pc.WriteRTCP(pkts)
		}
	}
}

// connected attaches the peer's senders to the relay: from now on the
// policy decides what each gets.
func (p *peer) connected() {
	r := p.srv.r
	for _, s := range []*sender{p.video, p.audio} {
		opt := relay.AttachOptions{Policy: p.srv.cfg.Video, Codec: capture.CodecH264}
		if s.kind == capture.KindAudio {
			opt = relay.AttachOptions{Policy: p.srv.cfg.Audio}
		}
		c, err := r.Attach(s.kind, s, opt)
		if err != nil {
			p.srv.log.Warn("webrtc: attach failed", "peer", p.id, "kind", s.kind, "err", err)
			p.close("attach failed")
			return
		}
		s.client.Store(c)
		go func() {
			select {
			case <-c.Done():
				var ej *relay.EjectError
				if errors.As(c.Err(), &ej) {
					p.close("ejected: " + ej.Reason)
				}
			case <-p.done:
			}
		}()
	}
	go p.sendReports()
}

// close ends the peer once: its relay sessions, the PeerConnection, and
// its entry in the server.
func (p *peer) close(why string) {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		close(p.done)
		p.srv.forget(p)
		for _, s := range []*sender{p.video, p.audio} {
			if c := s.client.Load(); c != nil {
				c.Close()
			}
		}
		go func() {
			_ = p.pc.Close()
		}()
		p.srv.log.Info("webrtc: peer closed", "peer", p.id, "remote", p.remote, "why", why,
			"feedbacks", p.feedbacks.Load(), "nacks", p.nacks.Load(), "retransmitted", p.rtxSent.Load(), "plis", p.plis.Load())
	})
}

// Abort is relay.PacketConn's: the relay ejected one of the peer's
// sessions (or is closing); the whole peer goes, and the page reconnects.
func (s *sender) Abort() { go s.p.close("relay ended the session") }

// RemoteAddr is relay.PacketConn's.
func (s *sender) RemoteAddr() string { return s.p.remote }

var _ relay.PacketConn = (*sender)(nil)
