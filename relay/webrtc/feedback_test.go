package webrtc

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/pion/rtcp"
)

// TestFeedbackSums: what a remote session's transport-wide feedback tells
// the uplink estimate (Server.RemoteFeedback): bytes delivered, packets
// lost, and the standing queue (the smallest growth of the one-way delay
// in a window), from the reports' arrival times.
func TestFeedbackSums(t *testing.T) {
	p := &peer{twAcked: 0xffff, done: make(chan struct{}), video: &sender{}, audio: &sender{}, away: true}
	now := time.Unix(1000, 0)
	// report sends n packets of 1000 bytes 1 ms apart from the
	// sequence number first, and reports them arriving delay later, the
	// ones in lost not at all.
	report := func(first uint16, n int, delay time.Duration, lost map[int]bool) {
		var deltas []*rtcp.RecvDelta
		var syms []uint16
		prev := int64(0)
		for i := 0; i < n; i++ {
			sent := int64(first)*1000 + int64(i)*1000 // µs
			p.nextTWCC(capture.KindVideo, false, 1000, sent*1000)
			if lost[i] {
				syms = append(syms, rtcp.TypeTCCPacketNotReceived)
				continue
			}
			syms = append(syms, rtcp.TypeTCCPacketReceivedSmallDelta)
			arrival := sent + delay.Microseconds()
			deltas = append(deltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: arrival - prev})
			prev = arrival
		}
		fb := &rtcp.TransportLayerCC{BaseSequenceNumber: first, PacketStatusCount: uint16(n), RecvDeltas: deltas}
		for len(syms) > 0 {
			k := min(7, len(syms))
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: syms[:k]})
			syms = syms[k:]
		}
		p.feedback(fb, now)
	}
	report(0, 100, 10*time.Millisecond, nil)
	f := p.takeFeedback()
	if f.sent != 100_000 || f.delivered != 100_000 || f.received != 100 || f.lost != 0 || f.queueN != 100 || f.queueMin != 0 {
		t.Errorf("a clean window: %+v", f)
	}
	// The next window's packets all wait 60 ms longer: a standing queue;
	// ten of them are lost.
	lost := map[int]bool{}
	for i := 40; i < 50; i++ {
		lost[i] = true
	}
	report(100, 100, 70*time.Millisecond, lost)
	f = p.takeFeedback()
	if f.delivered != 90_000 || f.received != 90 || f.lost != 10 || time.Duration(f.queueMin)*time.Microsecond != 60*time.Millisecond {
		t.Errorf("a queued, lossy window: %+v, want 90 kB delivered, 10 lost, a 60 ms standing queue", f)
	}
}
