package firmware

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtcp"
)

// Sender reports for `callbox send` (RFC 3550 section 6.4.1). Each stream's
// RTP timestamps start at a random value, so on their own they say nothing
// about how audio and video line up. A Sender Report pairs the sender's
// wall clock (NTP) with the stream's RTP clock, and an SDES CNAME shared by
// both streams tells the receiver they belong together: with both,
// GStreamer, VLC and ffmpeg play the two in sync.

// srInterval is how often reports go out. RFC 3550's 5 s minimum is for
// large sessions; one receiver and a few kbit/s of reports can afford one a
// second, which lets a player sync within a second of starting.
const srInterval = time.Second

// srStream is one stream's side of the reports.
type srStream struct {
	conn *net.UDPConn // to the receiver's RTCP port
	ssrc uint32

	mu      sync.Mutex
	clock   *rtpext.Clock // the packetizer's mapping: same base, same first capture time
	started bool
	packets uint32
	octets  uint32 // payload octets, as RFC 3550 counts them
}

func newSRStream(conn *net.UDPConn, ssrc uint32, rate int, base uint32) *srStream {
	return &srStream{conn: conn, ssrc: ssrc, clock: rtpext.NewClockAt(rate, base)}
}

// observe counts a published burst. The first one anchors the RTP clock at
// its capture time, as the packetizer's own clock was.
func (s *srStream) observe(b capture.Burst) {
	if len(b.Packets) == 0 {
		return
	}
	s.mu.Lock()
	if !s.started {
		s.clock.Timestamp(b.CaptureTime)
		s.started = true
	}
	for _, p := range b.Packets {
		s.packets++
		s.octets += uint32(rtpPayloadLen(p))
	}
	s.mu.Unlock()
}

// rtpPayloadLen is the payload length of a marshalled RTP packet: what is
// left after the fixed header, CSRCs and header extension.
func rtpPayloadLen(p []byte) int {
	if len(p) < 12 {
		return 0
	}
	n := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 {
		if len(p) < n+4 {
			return 0
		}
		n += 4 + 4*(int(p[n+2])<<8|int(p[n+3]))
	}
	return max(len(p)-n, 0)
}

// report returns the stream's Sender Report at now, or false before the
// first packet.
func (s *srStream) report(now time.Time) (rtcp.SenderReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return rtcp.SenderReport{}, false
	}
	return rtcp.SenderReport{
		SSRC:        s.ssrc,
		NTPTime:     rtpext.NTP(now),
		RTPTime:     s.clock.Timestamp(now),
		PacketCount: s.packets,
		OctetCount:  s.octets,
	}, true
}

// sendReports sends a compound SR + SDES for every stream each srInterval
// until ctx is done, and once more at the end so the receiver has the
// final counts.
func sendReports(ctx context.Context, cname string, streams ...*srStream) {
	send := func() {
		now := time.Now()
		for _, s := range streams {
			sr, ok := s.report(now)
			if !ok {
				continue
			}
			b, err := rtcp.Marshal([]rtcp.Packet{&sr, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
				Source: s.ssrc,
				Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: cname}},
			}}}})
			if err != nil {
				continue // cannot happen with these fields; a report is optional anyway
			}
			// No receiver on the RTCP port is fine: reports are a courtesy.
			s.conn.Write(b)
		}
	}
	t := time.NewTicker(srInterval)
	defer t.Stop()
	// The first report as soon as both streams have started, so a player
	// syncs from the start.
	first := time.NewTimer(100 * time.Millisecond)
	defer first.Stop()
	for {
		select {
		case <-ctx.Done():
			send()
			return
		case <-first.C:
			send()
		case <-t.C:
			send()
		}
	}
}

// senderCNAME is the canonical name both streams report: one name per
// sending process, so a receiver pairs exactly this session's streams.
func senderCNAME(ssrc uint32) string {
	return fmt.Sprintf("callbox-%08x@callbox", ssrc)
}
