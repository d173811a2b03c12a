package rtpext

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzAbsCaptureTime: on any input, AbsCaptureTimeNTP agrees with pion's
// full RTP parser whenever pion accepts the header. Seeds in testdata/fuzz.
func FuzzAbsCaptureTime(f *testing.F) {
	h := rtp.Header{Version: 2, PayloadType: 26, SequenceNumber: 1, SSRC: 2}
	var ext [8]byte
	_ = SetAbsCaptureTime(&h, &ext, Time(0xE000000012345678))
	b, _ := (&rtp.Packet{Header: h, Payload: []byte{1, 2}}).Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, err := AbsCaptureTimeNTP(pkt)
		var p rtp.Header
		if _, perr := p.Unmarshal(pkt); perr != nil {
			return // malformed for pion too; ours must only not panic
		}
		if p.Version != 2 || !p.Extension || p.ExtensionProfile != profileOneByte {
			if err == nil {
				t.Fatalf("found %#x where pion sees no one-byte extension", got)
			}
			return
		}
		// pion stops at the first ID 1 element as we do; compare only
		// where the element is well-formed.
		e := p.GetExtension(AbsCaptureTimeID)
		switch {
		case len(e) == 8 || len(e) == 16:
			if err != nil || got != binary.BigEndian.Uint64(e) {
				t.Fatalf("got %#x, %v; pion %x", got, err, e)
			}
		case e == nil:
			if err == nil {
				t.Fatalf("found %#x where pion has no ID 1", got)
			}
		default:
			if err == nil {
				t.Fatalf("accepted a %d-byte abs-capture-time", len(e))
			}
		}
	})
}
