package rtsp

import (
	"testing"

	"github.com/pion/rtp"
)

// FuzzPublisherFrame: a publisher's RTP packets (network input in the
// benchmark's publishing mode) gathered into a frame and checked for an
// H.264 keyframe: no panic, whatever the payload.
func FuzzPublisherFrame(f *testing.F) {
	f.Add([]byte{0x65, 0x88, 0x84}, []byte{0x7c, 0x85, 1, 2})                     // IDR, FU-A start of an IDR
	f.Add([]byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, []byte{}) // STAP-A: SPS, PPS
	f.Add([]byte{0x78, 0xff, 0xff}, []byte{0x1c})                                 // STAP-A with a length past the end; short FU-A
	f.Add([]byte{0x41, 0x9a}, []byte{0x5c, 0x41})                                 // non-IDR slice, FU-A of a non-IDR
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var fb frameBuf
		for i, pl := range [][]byte{a, b} {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Marker: i == 1}, Payload: pl}
			if err := fb.add(pkt); err != nil {
				t.Fatal(err)
			}
		}
		_ = h264Keyframe(&fb)
		bu := fb.burst(0, false)
		if len(bu.Packets) != 2 {
			t.Fatalf("%d packets", len(bu.Packets))
		}
	})
}
