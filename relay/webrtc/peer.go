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

	// owner is the phone (RemoteOptions.Owner, Config.Owner of the LAN
	// token), given to the relay sessions: CloseOwner, DisconnectOwner.
	owner string

	twMu    sync.Mutex
	twNext  uint16 // next transport-wide sequence number
	twAcked uint16 // every number up to here has been covered by feedback
	twKind  [twccRing]uint8
	// twLostAt is when a packet was reported lost (Unix ns; 0: not held);
	// lost lists the held ones, oldest first.
	twLostAt [twccRing]int64
	lost     []uint16
	// What the uplink estimate needs (Server.RemoteFeedback): each
	// packet's size and send time (Unix µs), and the window's sums.
	twSize   [twccRing]uint16
	twSentAt [twccRing]int64
	fb       feedbackSums
	// baseDelay is the smallest one-way delay (send to arrival, offset
	// by the clocks' difference) of the last two baseEpoch periods: the
	// queueing delay is a packet's delay less it.
	baseDelay [2]int64
	baseAt    int64
	// away: a session answered for a phone away from home
	// (AnswerRemote); uplink: its path leaves the LAN (the phone's
	// candidate is not a host one), so its copy crosses the uplink.
	away   bool
	uplink atomic.Bool
	// dropped is the video frames the relay's policy had skipped for this
	// session at the last RemoteFeedback (run by one caller at a time).
	dropped uint64

	closing   atomic.Bool
	closeOnce sync.Once
	done      chan struct{}

	feedbacks, nacks, rtxSent, plis atomic.Uint64
}

// nextTWCC numbers a packet on the connection's transport-wide sequence
// and remembers what it carried.
func (p *peer) nextTWCC(kind capture.Kind, rtx bool, size int, at int64) uint16 {
	p.twMu.Lock()
	n := p.twNext
	p.twNext++
	p.twSize[n%twccRing] = uint16(min(size, 0xffff))
	p.twSentAt[n%twccRing] = at / 1e3
	p.fb.sent += uint64(size)
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

// lossHold (a variable for the tuning runs) is how long a packet the feedback reports lost still counts as
// in flight. A lost packet is not a received one: counting it as
// acknowledged at once would reopen the window exactly when the link drops
// packets, and the box would send ever faster into a full queue. Holding
// it makes the window shrink while losses last, and come back after.
var lossHold = time.Second

// feedback applies one transport-wide congestion control report (the
// Health Check, S13): every packet it reports received leaves its kind's
// idle count now; a packet reported lost leaves it lossHold later (or when
// a later report says it arrived after all). Reports only move forward; a
// stale or reordered one acknowledges nothing new.
func (p *peer) feedback(fb *rtcp.TransportLayerCC, now time.Time) {
	if fb.PacketStatusCount == 0 {
		return
	}
	var ack [4]int
	p.twMu.Lock()
	seq := fb.BaseSequenceNumber
	left := int(fb.PacketStatusCount)
	// Arrival times (µs, the receiver's clock): the reference time, then
	// one delta per packet received, in order.
	arrival, di := int64(fb.ReferenceTime)*64000, 0
	status := func(received bool) {
		defer func() { seq++; left-- }()
		if received && di < len(fb.RecvDeltas) {
			arrival += fb.RecvDeltas[di].Delta
			di++
			if int16(seq-p.twAcked) > 0 && int16(seq-p.twNext) < 0 && p.twKind[seq%twccRing] != twNone {
				p.delaySample(arrival-p.twSentAt[seq%twccRing], now)
			}
		}
		if int16(seq-p.twAcked) <= 0 {
			// Reported before: a packet held as lost that arrived after all.
			if received && p.twLostAt[seq%twccRing] != 0 {
				p.fb.delivered += uint64(p.twSize[seq%twccRing])
				p.twLostAt[seq%twccRing] = 0
				ack[p.twKind[seq%twccRing]]++
				p.twKind[seq%twccRing] = twNone
			}
			return
		}
		if int16(seq-p.twNext) >= 0 {
			return // never sent: a bogus report
		}
		// Everything between the last report and seq was never reported:
		// treat it like a packet reported lost.
		for int16(seq-p.twAcked) > 1 {
			p.twAcked++
			p.holdLost(p.twAcked, now)
		}
		p.twAcked = seq
		if received {
			p.fb.delivered += uint64(p.twSize[seq%twccRing])
			p.fb.received++
			ack[p.twKind[seq%twccRing]]++
			p.twKind[seq%twccRing] = twNone
		} else {
			p.holdLost(seq, now)
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for i := 0; i < int(c.RunLength) && left > 0; i++ {
				status(c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList {
				if left <= 0 {
					break
				}
				status(sym != rtcp.TypeTCCPacketNotReceived)
			}
		}
	}
	p.releaseLost(now, &ack)
	p.twMu.Unlock()
	p.feedbacks.Add(1)
	p.ack(ack)
}

// holdLost notes a lost packet (under twMu).
func (p *peer) holdLost(seq uint16, now time.Time) {
	i := seq % twccRing
	if p.twKind[i] == twNone || p.twLostAt[i] != 0 {
		return
	}
	p.twLostAt[i] = now.UnixNano()
	p.lost = append(p.lost, seq)
	p.fb.lost++
}

// feedbackSums are one session's transport-wide feedback since the last
// Server.RemoteFeedback (under twMu).
type feedbackSums struct {
	sent, delivered uint64 // bytes
	received, lost  uint64 // packets
	// queueMin is the smallest queueing delay (µs) of the queueN packets
	// reported: a queue that never drained in the window. Not a mean nor
	// a maximum: a keyframe's burst queues for a moment on any link, and
	// drains; an uplink that cannot carry the copies never does.
	queueMin, queueN int64
}

// baseEpoch is how long a minimum of the one-way delay stands: the
// clocks of box and phone drift apart slowly, and a route may change.
const baseEpoch = 10 * time.Second

// delaySample notes one packet's one-way delay d (µs, offset by the
// clocks' difference) (under twMu).
func (p *peer) delaySample(d int64, now time.Time) {
	t := now.UnixNano()
	if t-p.baseAt > int64(baseEpoch) {
		p.baseDelay[0], p.baseDelay[1], p.baseAt = p.baseDelay[1], d, t
	}
	if p.baseDelay[1] == 0 || d < p.baseDelay[1] {
		p.baseDelay[1] = d
	}
	base := p.baseDelay[1]
	if p.baseDelay[0] != 0 && p.baseDelay[0] < base {
		base = p.baseDelay[0]
	}
	if q := d - base; p.fb.queueN == 0 || q < p.fb.queueMin {
		p.fb.queueMin = q
	}
	p.fb.queueN++
}

// takeFeedback returns the sums since the last call and starts anew.
func (p *peer) takeFeedback() feedbackSums {
	p.twMu.Lock()
	defer p.twMu.Unlock()
	f := p.fb
	p.fb = feedbackSums{}
	return f
}

// releaseLost acknowledges the lost packets held for lossHold (under twMu).
func (p *peer) releaseLost(now time.Time, ack *[4]int) {
	cut := now.Add(-lossHold).UnixNano()
	n := 0
	for _, seq := range p.lost {
		i := seq % twccRing
		at := p.twLostAt[i]
		if at == 0 {
			n++ // arrived after all: acknowledged then
			continue
		}
		if at > cut {
			break
		}
		p.twLostAt[i] = 0
		ack[p.twKind[i]]++
		p.twKind[i] = twNone
		n++
	}
	p.lost = append(p.lost[:0], p.lost[n:]...)
}

func (p *peer) ack(ack [4]int) {
	if c := p.video.client.Load(); c != nil && ack[twVideo] > 0 {
		c.Ack(ack[twVideo])
	}
	if c := p.audio.client.Load(); c != nil && ack[twAudio] > 0 {
		c.Ack(ack[twAudio])
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
				p.feedback(pkt, time.Now())
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
		var ack [4]int
		p.twMu.Lock()
		p.releaseLost(time.Now(), &ack)
		p.twMu.Unlock()
		p.ack(ack)
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
	// How the phone reached the box: "host", or "prflx" when it hid its
	// addresses (mDNS names the box does not resolve) and the box learnt
	// it from its connectivity checks.
	for _, rs := range p.pc.GetSenders() {
		if tr := rs.Transport(); tr != nil {
			if pair, err := tr.ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
				p.srv.countRemote(pair.Remote.Typ.String())
				p.uplink.Store(p.away && pair.Remote.Typ != pion.ICECandidateTypeHost)
				p.srv.log.Info("webrtc: connected", "peer", p.id, "remote", pair.Remote.String())
				break
			}
		}
	}
	for _, s := range []*sender{p.video, p.audio} {
		opt := relay.AttachOptions{Policy: p.srv.cfg.Video, Codec: capture.CodecH264, Owner: p.owner}
		if s.kind == capture.KindAudio {
			opt = relay.AttachOptions{Policy: p.srv.cfg.Audio, Opus: s.isOpus(), Owner: p.owner}
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
