package firmware

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func TestRTPPayloadLen(t *testing.T) {
	h := rtp.Header{Version: 2, PayloadType: 26, SequenceNumber: 1, Timestamp: 2, SSRC: 3}
	var ext [rtpext.AbsCaptureTimeSize]byte
	plain, _ := (&rtp.Packet{Header: h, Payload: make([]byte, 100)}).Marshal()
	if err := rtpext.SetAbsCaptureTime(&h, &ext, time.Now()); err != nil {
		t.Fatal(err)
	}
	withExt, _ := (&rtp.Packet{Header: h, Payload: make([]byte, 100)}).Marshal()
	h.CSRC = []uint32{7, 8}
	withCSRC, _ := (&rtp.Packet{Header: h, Payload: make([]byte, 100)}).Marshal()
	for _, c := range []struct {
		name string
		pkt  []byte
		want int
	}{
		{"plain", plain, 100},
		{"extension", withExt, 100},
		{"csrc and extension", withCSRC, 100},
		{"short", []byte{0x80, 1, 2}, 0},
		{"truncated extension", withExt[:14], 0},
	} {
		if got := rtpPayloadLen(c.pkt); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// A report states the packetizer's mapping: RTP time = base + rate x
// (wall time - first capture time), with the counts so far.
func TestSRStreamReport(t *testing.T) {
	s := newSRStream(nil, 0xabc, 90000, 1000)
	if _, ok := s.report(time.Now()); ok {
		t.Fatal("a report before any packet")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pkt := make([]byte, 12+50)
	pkt[0] = 0x80
	s.observe(capture.Burst{Kind: capture.KindVideo, Packets: [][]byte{pkt, pkt}, CaptureTime: t0})
	s.observe(capture.Burst{Kind: capture.KindVideo, Packets: [][]byte{pkt}, CaptureTime: t0.Add(time.Second)})
	s.observe(capture.Burst{Kind: capture.KindVideo, CaptureTime: t0.Add(2 * time.Second)}) // empty: ignored
	sr, ok := s.report(t0.Add(1500 * time.Millisecond))
	if !ok {
		t.Fatal("no report")
	}
	if sr.SSRC != 0xabc || sr.RTPTime != 1000+135000 || sr.PacketCount != 3 || sr.OctetCount != 150 ||
		sr.NTPTime != rtpext.NTP(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("report %+v", sr)
	}
}

// Reports go to each stream's RTCP port as SR + SDES compounds with one
// CNAME for both streams, and a last one when sending stops.
func TestSendReports(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	v := newSRStream(tx, 11, capture.VideoClockRate, 0)
	a := newSRStream(tx, 22, capture.PCMUClockRate, 0)
	now := time.Now()
	pkt := make([]byte, 40)
	pkt[0] = 0x80
	v.observe(capture.Burst{Packets: [][]byte{pkt}, CaptureTime: now})
	a.observe(capture.Burst{Packets: [][]byte{pkt}, CaptureTime: now})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sendReports(ctx, senderCNAME(11), v, a); close(done) }()
	cnames := map[uint32]string{}
	buf := make([]byte, 1500)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(cnames) < 2 {
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("reports: %v (got %v)", err, cnames)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatalf("bad RTCP: %v", err)
		}
		if len(pkts) != 2 {
			t.Fatalf("compound of %d packets, want SR + SDES", len(pkts))
		}
		sr, ok1 := pkts[0].(*rtcp.SenderReport)
		sd, ok2 := pkts[1].(*rtcp.SourceDescription)
		if !ok1 || !ok2 || len(sd.Chunks) != 1 || sd.Chunks[0].Source != sr.SSRC || sr.PacketCount != 1 || sr.OctetCount != 28 {
			t.Fatalf("compound %v", pkts)
		}
		cnames[sr.SSRC] = sd.Chunks[0].Items[0].Text
	}
	if cnames[11] == "" || cnames[11] != cnames[22] {
		t.Errorf("CNAMEs %v: want one, shared", cnames)
	}
	cancel()
	<-done
}

// rtpPayloadLen reads packet headers: any bytes give a length within the
// packet, never a panic.
func FuzzRTPPayloadLen(f *testing.F) {
	// Seeds in testdata/fuzz/FuzzRTPPayloadLen: a plain packet, one with
	// CSRCs and the abs-capture-time extension, and truncated ones.
	f.Fuzz(func(t *testing.T, p []byte) {
		if n := rtpPayloadLen(p); n < 0 || n > len(p) {
			t.Fatalf("payload length %d of a %d-byte packet", n, len(p))
		}
	})
}
