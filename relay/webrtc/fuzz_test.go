package webrtc

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
	"github.com/pion/rtcp"
)

// FuzzParseRTP: the sender's header parser takes whatever a publisher sent
// (a remote box, in time): it must never panic, and a payload it returns
// lies within the packet.
func FuzzParseRTP(f *testing.F) {
	f.Add([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 1, 2})
	f.Add([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 3, 0x17, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0x65})
	f.Add([]byte{0xA0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, payload, _, _, err := parseRTP(b)
		if err != nil {
			return
		}
		if n < 12 || n > len(b) || len(payload) > len(b)-n {
			t.Fatalf("header %d, payload %d of a %d-byte packet", n, len(payload), len(b))
		}
	})
}

// FuzzSplit: the Annex B splitter reads files.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a})
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		aus, err := testsrc.Split(b)
		if err != nil {
			return
		}
		for _, au := range aus {
			if len(au.Data) == 0 {
				t.Fatal("empty access unit")
			}
		}
	})
}

// FuzzFeedback: transport-wide feedback from the network (after SRTCP and
// pion's parser) must never panic or acknowledge more than was sent.
func FuzzFeedback(f *testing.F) {
	f.Add(uint16(0), uint16(10), uint16(5), []byte{1, 1, 0, 1, 2, 0, 3})
	f.Add(uint16(65530), uint16(100), uint16(300), []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, base, count, sent uint16, syms []byte) {
		p := &peer{twAcked: 0xffff, done: make(chan struct{}), video: &sender{}, audio: &sender{}}
		sent %= 2000
		for i := 0; i < int(sent); i++ {
			k := capture.KindVideo
			if i%3 == 0 {
				k = capture.KindAudio
			}
			p.nextTWCC(k, i%7 == 0, 1200, int64(i)*1e6)
		}
		var chunks []rtcp.PacketStatusChunk
		var list []uint16
		for _, s := range syms {
			list = append(list, uint16(s%4))
		}
		chunks = append(chunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: list})
		chunks = append(chunks, &rtcp.RunLengthChunk{PacketStatusSymbol: uint16(len(syms) % 2), RunLength: count})
		now := time.Unix(1000, 0)
		p.feedback(&rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: count, PacketChunks: chunks}, now)
		var ack [4]int
		p.releaseLost(now.Add(2*lossHold), &ack)
		if d := int(uint16(p.twAcked + 1)); int16(p.twNext-p.twAcked) < 1 && sent > 0 {
			t.Fatalf("acknowledged up to %d, sent %d", d, sent)
		}
	})
}
