package pcmu

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzPCMUDepacketizer feeds RFC 4571-framed packet streams (2-byte length
// before each packet) to a depacketizer. Seeds in testdata/fuzz.
func FuzzPCMUDepacketizer(f *testing.F) {
	p, _ := NewPacketizer(0, 1, 0)
	var seed []byte
	for k := range 3 {
		b, err := p.Packetize(chunk(48000, time.Unix(int64(k), 0), uint64(k), 0))
		if err != nil {
			f.Fatal(err)
		}
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(b.Packets[0])))
		seed = append(seed, b.Packets[0]...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDepacketizer()
		var emitted uint64
		for len(data) >= 2 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			pkt := data[2 : 2+n]
			data = data[2+n:]
			c, ok, err := d.Push(pkt)
			if !ok {
				continue
			}
			emitted++
			if err != nil && c.LostPackets == 0 {
				t.Fatalf("error %v without lost packets", err)
			}
			if len(c.Samples) == 0 || len(c.Samples) > len(pkt) || c.LostPackets < 0 || c.GapSamples < 0 {
				t.Fatalf("chunk %+v from %d bytes", c, len(pkt))
			}
		}
		if s := d.Stats(); s.Packets != emitted {
			t.Fatalf("stats %+v, emitted %d", s, emitted)
		}
	})
}
