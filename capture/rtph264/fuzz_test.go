package rtph264

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// FuzzH264Depacketizer feeds RFC 4571-framed packet streams (2-byte length
// before each packet) to a depacketizer; seeds in testdata/fuzz. Emitted
// access units must be well-formed Annex B and start at an IDR.
func FuzzH264Depacketizer(f *testing.F) {
	aus := accessUnits(f)
	p, _ := NewPacketizer(300, 1, 96)
	var seed []byte
	for i, au := range aus[:2] {
		b, err := p.Packetize(h264Frame(au, time.Unix(int64(i), 0)))
		if err != nil {
			f.Fatal(err)
		}
		for _, pkt := range b.Packets {
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(pkt)))
			seed = append(seed, pkt...)
		}
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDepacketizer()
		first := true
		var emitted uint64
		for len(data) >= 2 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			pkt := data[2 : 2+n]
			data = data[2+n:]
			au, ok, _ := d.Push(pkt)
			if !ok {
				continue
			}
			emitted++
			if first && !au.Keyframe {
				t.Fatal("first access unit is not a keyframe")
			}
			first = false
			if !bytes.HasPrefix(au.Data, []byte{0, 0, 0, 1}) {
				t.Fatalf("access unit without start code: %x", au.Data[:min(8, len(au.Data))])
			}
			if _, err := SplitAnnexB(nil, au.Data); err != nil {
				t.Fatalf("emitted access unit does not split: %v", err)
			}
		}
		if d.Stats().AccessUnits != emitted {
			t.Fatalf("stats %+v, emitted %d", d.Stats(), emitted)
		}
	})
}
