package rtpjpeg

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

// The fuzz targets run their seed corpora (testdata/fuzz/...) in every
// `go test`; scripts/fuzz.sh runs them as fuzzers.

func FuzzParseJPEG(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jpg")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := ParseJPEG(data)
		if err != nil {
			return
		}
		if im.Width <= 0 || im.Width > MaxDimension || im.Width%8 != 0 ||
			im.Height <= 0 || im.Height > MaxDimension || im.Height%8 != 0 {
			t.Fatalf("accepted size %dx%d", im.Width, im.Height)
		}
		if im.Type&^64 > 1 || (im.Type >= 64) != (im.RestartInterval > 0) {
			t.Fatalf("type %d with DRI %d", im.Type, im.RestartInterval)
		}
		if len(im.QTables[0]) != 64 || len(im.QTables[1]) != 64 || len(im.Scan) == 0 {
			t.Fatalf("tables %d/%d scan %d", len(im.QTables[0]), len(im.QTables[1]), len(im.Scan))
		}
		// Whatever is accepted survives packetizing and reassembly
		// unchanged: the rebuilt image parses to the same fields and scan.
		p, err := NewPacketizer(MinPacketSize+50, 1, capture.PayloadTypeJPEG)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Packetize(capture.VideoFrame{Codec: capture.CodecJPEG, Data: data, CaptureTime: time.Unix(1, 0)})
		if err != nil {
			t.Fatalf("parsed but not packetized: %v", err)
		}
		d := NewDepacketizer()
		var got Frame
		var ok bool
		for _, pkt := range b.Packets {
			if got, ok, err = d.Push(pkt); err != nil {
				t.Fatal(err)
			}
		}
		if !ok {
			t.Fatal("no frame")
		}
		im2, err := ParseJPEG(got.Data)
		if err != nil {
			t.Fatalf("rebuilt image: %v", err)
		}
		if im2.Type != im.Type || im2.Width != im.Width || im2.Height != im.Height ||
			im2.RestartInterval != im.RestartInterval || !bytes.Equal(im2.Scan, im.Scan) ||
			!bytes.Equal(im2.QTables[0], im.QTables[0]) || !bytes.Equal(im2.QTables[1], im.QTables[1]) {
			t.Fatal("rebuilt image differs")
		}
	})
}

// joinPackets frames packets RFC 4571 style (2-byte length before each), the
// input format of FuzzJPEGDepacketizer.
func joinPackets(pkts [][]byte) []byte {
	var out []byte
	for _, p := range pkts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out
}

// splitPackets is the inverse of joinPackets; a short tail is one packet.
func splitPackets(data []byte, fn func([]byte)) {
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		fn(data[:n])
		data = data[n:]
	}
}

func FuzzJPEGDepacketizer(f *testing.F) {
	for _, name := range []string{"testdata/ffmpeg_420.jpg"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		p, _ := NewPacketizer(MinPacketSize+200, 1, capture.PayloadTypeJPEG)
		var all [][]byte
		for i := range 2 {
			bu, err := p.Packetize(capture.VideoFrame{Codec: capture.CodecJPEG, Data: b, CaptureTime: time.Unix(int64(i), 0)})
			if err != nil {
				f.Fatal(err)
			}
			all = append(all, copyBurst(bu)...)
		}
		f.Add(joinPackets(all))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDepacketizer()
		emitted := uint64(0)
		splitPackets(data, func(pkt []byte) {
			fr, ok, _ := d.Push(pkt)
			if !ok {
				return
			}
			emitted++
			if !bytes.HasPrefix(fr.Data, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(fr.Data, []byte{0xFF, 0xD9}) ||
				fr.Width <= 0 || fr.Height <= 0 || fr.Width > MaxDimension || fr.Height > MaxDimension {
				t.Fatalf("emitted a bad frame: %dx%d, %d bytes", fr.Width, fr.Height, len(fr.Data))
			}
		})
		if s := d.Stats(); s.Frames != emitted {
			t.Fatalf("stats count %d frames, %d emitted", s.Frames, emitted)
		}
	})
}
