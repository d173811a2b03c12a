package proto

import (
	"errors"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

func TestParseBurstRoundTrip(t *testing.T) {
	pkt := func(n int) []byte {
		b := make([]byte, n)
		b[0] = 0x80
		return b
	}
	in := capture.Burst{Kind: capture.KindVideo, Keyframe: true, CaptureTime: time.Unix(1700000000, 123),
		Packets: [][]byte{pkt(12), pkt(1144), pkt(300)}}
	out, err := ParseBurst(AppendBurst(nil, &in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != in.Kind || out.Keyframe != in.Keyframe || !out.CaptureTime.Equal(in.CaptureTime) || len(out.Packets) != 3 || len(out.Packets[1]) != 1144 {
		t.Fatalf("round trip: %+v", out)
	}
	for _, bad := range [][]byte{
		nil,
		{1, 0, 0, 0, 0, 0, 0, 0, 0, 0},           // no packets
		{3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12},    // bad kind
		{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12},    // bad flags
		{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1}, // truncated packet
		append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12}, make([]byte, 12)...), // RTP version 0
	} {
		if _, err := ParseBurst(bad, nil); !errors.Is(err, ErrBadMessage) {
			t.Errorf("accepted %x", bad)
		}
	}
}

// FuzzParseBurst: the hub parses every burst a publishing box sends.
func FuzzParseBurst(f *testing.F) {
	f.Add(AppendBurst(nil, &capture.Burst{Kind: capture.KindAudio, Packets: [][]byte{append([]byte{0x80}, make([]byte, 171)...)}}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		b, err := ParseBurst(msg, nil)
		if err != nil {
			return
		}
		again, err := ParseBurst(AppendBurst(nil, &b), nil)
		if err != nil || len(again.Packets) != len(b.Packets) || again.Kind != b.Kind {
			t.Fatalf("accepted burst does not round-trip: %v", err)
		}
	})
}
