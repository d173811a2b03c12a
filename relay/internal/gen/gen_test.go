package gen

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/pion/rtp"
)

func TestVideoFramesParseAndCarryCaptureTime(t *testing.T) {
	s := Video(16000, 1200, 1)
	t0 := time.Unix(1700000000, 123456789)
	for f := 0; f < 5; f++ {
		at := t0.Add(time.Duration(f) * 33 * time.Millisecond)
		b := s.Next(at)
		total := 0
		for i, p := range b.Packets {
			var pkt rtp.Packet
			if err := pkt.Unmarshal(p); err != nil {
				t.Fatalf("frame %d packet %d: %v", f, i, err)
			}
			if len(p) > 1200 {
				t.Fatalf("packet of %d bytes", len(p))
			}
			if pkt.Marker != (i == len(b.Packets)-1) {
				t.Fatalf("marker on packet %d of %d", i, len(b.Packets))
			}
			ct, err := rtpext.AbsCaptureTime(p)
			if i == 0 && (err != nil || !ct.Equal(at)) {
				t.Fatalf("first packet capture time %v, %v; want %v", ct, err, at)
			}
			if i > 0 && err == nil {
				t.Fatal("extension on a later packet")
			}
			total += len(pkt.Payload) - 8
			if i == 0 {
				total -= qtBytes
			}
		}
		if total < 14400 || total > 17600 {
			t.Fatalf("frame payload %d bytes, want 16000±10%%", total)
		}
	}
	// The box's own depacketizer (RFC 2435) takes the frames whole.
	d := rtpjpeg.NewDepacketizer()
	s2 := Video(16000, 1200, 2)
	for f := 0; f < 3; f++ {
		b := s2.Next(t0.Add(time.Duration(f) * 33 * time.Millisecond))
		for i, p := range b.Packets {
			fr, ok, err := d.Push(p)
			if err != nil || ok != (i == len(b.Packets)-1) {
				t.Fatalf("depacketizer at frame %d packet %d: ok %v, %v", f, i, ok, err)
			}
			if ok && (fr.Width != 1280 || fr.Height != 720) {
				t.Fatalf("frame of %dx%d", fr.Width, fr.Height)
			}
		}
	}
	a := Audio(1).Next(t0)
	if a.Kind != capture.KindAudio || len(a.Packets) != 1 || len(a.Packets[0]) != 28+160 {
		t.Fatalf("audio burst %+v", a)
	}
}
