package rtph264

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
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

// FuzzH264Packetizer: any access unit the packetizer accepts comes out as
// packets within the size limit, numbered in order, marker on the last,
// which pion's depacketizer reads back as the expected byte stream.
func FuzzH264Packetizer(f *testing.F) {
	aus := accessUnits(f)
	f.Add(aus[1])
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x84})
	f.Fuzz(func(t *testing.T, au []byte) {
		const size = 100
		p, err := NewPacketizer(size, 1, 96)
		if err != nil {
			t.Fatal(err)
		}
		p.SetStart(65530, 0)
		b, err := p.Packetize(h264Frame(au, time.Unix(1, 0)))
		if err != nil {
			return
		}
		var pion codecs.H264Packet
		var got []byte
		for k, pkt := range b.Packets {
			if len(pkt) > size {
				t.Fatalf("packet of %d bytes", len(pkt))
			}
			var rp rtp.Packet
			if err := rp.Unmarshal(pkt); err != nil {
				t.Fatal(err)
			}
			if rp.SequenceNumber != uint16(65530+k) || rp.Marker != (k == len(b.Packets)-1) {
				t.Fatalf("packet %d: seq %d marker %v", k, rp.SequenceNumber, rp.Marker)
			}
			out, err := pion.Unmarshal(rp.Payload)
			if err != nil {
				t.Fatalf("pion: %v", err)
			}
			got = append(got, out...)
		}
		if want := expected(t, au, nil, nil); !bytes.Equal(got, want) {
			t.Fatalf("pion reads %x\nwant %x", got, want)
		}
	})
}
