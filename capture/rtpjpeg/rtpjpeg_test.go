package rtpjpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

var packetSizes = []int{400, 1200, 1400}

// goJPEG encodes a picture with Go's image/jpeg (4:2:0, standard tables).
func goJPEG(t testing.TB, w, h, quality int, seed uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testPicture(w, h, seed), &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripDHT removes every DHT segment, as UVC cameras send MJPEG.
func stripDHT(t testing.TB, data []byte) []byte {
	t.Helper()
	out := append([]byte{}, data[:2]...)
	i := 2
	for {
		m := data[i+1]
		l := int(data[i+2])<<8 | int(data[i+3])
		if m != mDHT {
			out = append(out, data[i:i+2+l]...)
		}
		i += 2 + l
		if m == mSOS {
			return append(out, data[i:]...)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type variant struct {
	name     string
	data     []byte
	wantType uint8
	ref      []byte // decodes to the expected pixels; data itself when nil
}

func variants(t testing.TB) []variant {
	pic := testPicture(160, 112, 7)
	go420 := goJPEG(t, 160, 112, 85, 3)
	own420 := encodeTestJPEG(pic, encOpts{h: 2, v: 2})
	return []variant{
		{name: "go-420", data: go420, wantType: 1},
		{name: "go-420-noDHT", data: stripDHT(t, go420), wantType: 1, ref: go420},
		{name: "go-420-q100", data: goJPEG(t, 96, 64, 100, 4), wantType: 1},
		{name: "own-422", data: encodeTestJPEG(pic, encOpts{h: 2, v: 1}), wantType: 0},
		{name: "own-422-dri", data: encodeTestJPEG(pic, encOpts{h: 2, v: 1, dri: 5}), wantType: 64},
		{name: "own-420-dri1", data: encodeTestJPEG(pic, encOpts{h: 2, v: 2, dri: 1}), wantType: 65},
		{name: "own-420-noDHT", data: encodeTestJPEG(pic, encOpts{h: 2, v: 2, noDHT: true}), wantType: 1, ref: own420},
		{name: "own-422-dri-noDHT", data: encodeTestJPEG(pic, encOpts{h: 2, v: 1, dri: 7, noDHT: true}), wantType: 64,
			ref: encodeTestJPEG(pic, encOpts{h: 2, v: 1, dri: 7})},
		{name: "ffmpeg-420", data: readTestdata(t, "ffmpeg_420.jpg"), wantType: 1},
	}
}

func decode(t testing.TB, data []byte) *image.YCbCr {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	y, ok := img.(*image.YCbCr)
	if !ok {
		t.Fatalf("decoded %T, want *image.YCbCr", img)
	}
	return y
}

func samePixels(a, b *image.YCbCr) error {
	if a.Rect != b.Rect || a.SubsampleRatio != b.SubsampleRatio {
		return fmt.Errorf("geometry %v %v vs %v %v", a.Rect, a.SubsampleRatio, b.Rect, b.SubsampleRatio)
	}
	for y := a.Rect.Min.Y; y < a.Rect.Max.Y; y++ {
		for x := a.Rect.Min.X; x < a.Rect.Max.X; x++ {
			if a.YCbCrAt(x, y) != b.YCbCrAt(x, y) {
				return fmt.Errorf("pixel (%d,%d): %v vs %v", x, y, a.YCbCrAt(x, y), b.YCbCrAt(x, y))
			}
		}
	}
	return nil
}

func frame(data []byte, at time.Time) capture.VideoFrame {
	return capture.VideoFrame{Codec: capture.CodecJPEG, Data: data, Keyframe: true, CaptureTime: at}
}

// copyBurst detaches packets from the packetizer's buffer.
func copyBurst(b capture.Burst) [][]byte {
	out := make([][]byte, len(b.Packets))
	for i, p := range b.Packets {
		out[i] = append([]byte{}, p...)
	}
	return out
}

// checkPackets verifies the RTP framing of one frame's packets.
func checkPackets(t *testing.T, pkts [][]byte, maxSize int, seq uint16, at time.Time) {
	t.Helper()
	for i, b := range pkts {
		if len(b) > maxSize {
			t.Fatalf("packet %d: %d bytes > %d", i, len(b), maxSize)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.SequenceNumber != seq+uint16(i) {
			t.Fatalf("packet %d: seq %d, want %d", i, p.SequenceNumber, seq+uint16(i))
		}
		if p.Marker != (i == len(pkts)-1) {
			t.Fatalf("packet %d of %d: marker %v", i, len(pkts), p.Marker)
		}
		if p.PayloadType != capture.PayloadTypeJPEG {
			t.Fatalf("payload type %d", p.PayloadType)
		}
		ct, err := rtpext.AbsCaptureTime(b)
		if i == 0 {
			if err != nil || !ct.Equal(at) {
				t.Fatalf("first packet abs-capture-time %v, %v; want %v", ct, err, at)
			}
		} else if !errors.Is(err, rtpext.ErrNoExtension) {
			t.Fatalf("packet %d has an extension (%v)", i, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	vs := variants(t)
	for _, size := range packetSizes {
		for _, v := range vs {
			t.Run(fmt.Sprintf("%s/%d", v.name, size), func(t *testing.T) {
				im, err := ParseJPEG(v.data)
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if im.Type != v.wantType {
					t.Fatalf("type %d, want %d", im.Type, v.wantType)
				}
				p, err := NewPacketizer(size, 0x1234, capture.PayloadTypeJPEG)
				if err != nil {
					t.Fatal(err)
				}
				p.SetStart(65534, 1000) // cross the sequence number wrap
				d := NewDepacketizer()
				at := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
				ref := v.ref
				if ref == nil {
					ref = v.data
				}
				want := decode(t, ref)
				seq := uint16(65534)
				for n := range 3 {
					ft := at.Add(time.Duration(n) * 40 * time.Millisecond)
					b, err := p.Packetize(frame(v.data, ft))
					if err != nil {
						t.Fatalf("packetize: %v", err)
					}
					checkPackets(t, b.Packets, size, seq, ft)
					seq += uint16(len(b.Packets))
					for i, pkt := range b.Packets {
						f, ok, err := d.Push(pkt)
						if err != nil {
							t.Fatalf("push %d: %v", i, err)
						}
						if ok != (i == len(b.Packets)-1) {
							t.Fatalf("packet %d of %d: frame complete %v", i, len(b.Packets), ok)
						}
						if !ok {
							continue
						}
						if wantTS := uint32(1000 + n*3600); f.Timestamp != wantTS {
							t.Fatalf("timestamp %d, want %d", f.Timestamp, wantTS)
						}
						if !f.CaptureTime.Equal(ft) || f.Width != im.Width || f.Height != im.Height || f.Type != v.wantType {
							t.Fatalf("frame %+v", f)
						}
						if err := samePixels(want, decode(t, f.Data)); err != nil {
							t.Fatal(err)
						}
					}
				}
				if s := d.Stats(); s.Frames != 3 || s.LostFrames != 0 || s.LostPackets != 0 {
					t.Fatalf("stats %+v", s)
				}
			})
		}
	}
}

// TestTestEncoder makes sure the test's own encoder writes what it claims:
// image/jpeg decodes it with the intended subsampling, and as close to the
// source as Go's own encoder gets (4:2:0) or closer (less subsampling).
func TestTestEncoder(t *testing.T) {
	pic := testPicture(160, 112, 7)
	var gob bytes.Buffer
	if err := jpeg.Encode(&gob, pic, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	goMSE := mse(pic, decode(t, gob.Bytes()))
	for _, c := range []struct {
		o    encOpts
		want image.YCbCrSubsampleRatio
	}{
		{encOpts{h: 2, v: 2}, image.YCbCrSubsampleRatio420},
		{encOpts{h: 2, v: 1, dri: 3}, image.YCbCrSubsampleRatio422},
		{encOpts{h: 1, v: 1}, image.YCbCrSubsampleRatio444},
		{encOpts{h: 2, v: 2, progressive: true}, image.YCbCrSubsampleRatio420},
		{encOpts{h: 2, v: 1, progressive: true}, image.YCbCrSubsampleRatio422},
	} {
		got := decode(t, encodeTestJPEG(pic, c.o))
		if got.SubsampleRatio != c.want {
			t.Fatalf("%+v: %v", c.o, got.SubsampleRatio)
		}
		if m := mse(pic, got); m > goMSE*1.05 {
			t.Fatalf("%+v: MSE %.1f, image/jpeg at the same quality %.1f", c.o, m, goMSE)
		}
	}
}

func mse(a, b image.Image) float64 {
	var se, n float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r0, g0, b0, _ := a.At(x, y).RGBA()
			r1, g1, b1, _ := b.At(x, y).RGBA()
			for _, d := range [3]float64{float64(r0>>8) - float64(r1>>8), float64(g0>>8) - float64(g1>>8), float64(b0>>8) - float64(b1>>8)} {
				se += d * d
				n++
			}
		}
	}
	return se / n
}

func TestLarge720p(t *testing.T) {
	data := goJPEG(t, 1280, 720, 80, 9)
	p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	d := NewDepacketizer()
	at := time.Now()
	b, err := p.Packetize(frame(data, at))
	if err != nil {
		t.Fatal(err)
	}
	var got Frame
	for _, pkt := range b.Packets {
		if len(pkt) > capture.DefaultMaxPacketSize {
			t.Fatalf("%d bytes", len(pkt))
		}
		f, ok, err := d.Push(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = f
		}
	}
	if err := samePixels(decode(t, data), decode(t, got.Data)); err != nil {
		t.Fatal(err)
	}
	t.Logf("1280x720: %d bytes in %d packets", len(data), len(b.Packets))
}

// patch returns a copy of data with the bytes at the first occurrence of
// old replaced by new (used for header fields only).
func patch(t *testing.T, data, old, new []byte) []byte {
	t.Helper()
	i := bytes.Index(data, old)
	if i < 0 {
		t.Fatalf("%x not found", old)
	}
	out := append([]byte{}, data...)
	copy(out[i:], new)
	return out
}

func TestReject(t *testing.T) {
	base := goJPEG(t, 64, 48, 75, 1)
	pic := testPicture(64, 48, 2)
	// A valid table with the standard code lengths but symbols in another
	// order: a legal JPEG (checked below) that receivers would decode
	// wrongly with the standard tables.
	custom := stdHuffman
	vals := append([]byte{}, custom[0].vals...)
	vals[0], vals[1] = vals[1], vals[0]
	custom[0].vals = vals
	customJPEG := encodeTestJPEG(pic, encOpts{h: 2, v: 2, huff: &custom})
	decode(t, customJPEG)
	slot2 := stdHuffman
	slot2[3].id = 2

	var big bytes.Buffer
	if err := jpeg.Encode(&big, image.NewRGBA(image.Rect(0, 0, 2048, 16)), nil); err != nil {
		t.Fatal(err)
	}
	var odd bytes.Buffer
	if err := jpeg.Encode(&odd, testPicture(100, 52, 1), nil); err != nil {
		t.Fatal(err)
	}
	var gray bytes.Buffer
	if err := jpeg.Encode(&gray, image.NewGray(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	sof := []byte{0xFF, 0xC0, 0, 17, 8}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"progressive", encodeTestJPEG(pic, encOpts{h: 2, v: 2, progressive: true}), ErrProgressive},
		{"progressive-422", encodeTestJPEG(pic, encOpts{h: 2, v: 1, progressive: true}), ErrProgressive},
		{"12-bit", patch(t, base, sof, []byte{0xFF, 0xC1, 0, 17, 12}), ErrPrecision},
		{"12-bit-sof0", patch(t, base, sof, []byte{0xFF, 0xC0, 0, 17, 12}), ErrPrecision},
		{"arithmetic", patch(t, base, sof, []byte{0xFF, 0xC9}), ErrNotBaseline},
		{"lossless", patch(t, base, sof, []byte{0xFF, 0xC3}), ErrNotBaseline},
		{"444", encodeTestJPEG(pic, encOpts{h: 1, v: 1}), ErrSampling},
		{"444-ffmpeg", readTestdata(t, "ffmpeg_444.jpg"), ErrSampling},
		// ffmpeg's mjpeg encoder writes 4:2:2 as Y 2x2 with chroma 1x2: the
		// same picture geometry, but a 16x16 MCU that RFC 2435's type 0
		// (Y 2x1, chroma 1x1) cannot describe.
		{"422-as-2x2-mcu-ffmpeg", readTestdata(t, "ffmpeg_422.jpg"), ErrSampling},
		{"gray", gray.Bytes(), ErrSampling},
		{"custom-huffman", customJPEG, ErrHuffman},
		{"custom-huffman-ffmpeg", readTestdata(t, "ffmpeg_422_optimal_huffman.jpg"), ErrHuffman},
		{"huffman-slot-2", encodeTestJPEG(pic, encOpts{h: 2, v: 2, huff: &slot2}), ErrHuffman},
		{"over-2040", big.Bytes(), ErrSize},
		{"not-multiple-of-8", odd.Bytes(), ErrSize},
		{"not-jpeg", []byte("\x89PNG\r\n\x1a\n"), ErrNotJPEG},
		{"empty", nil, ErrNotJPEG},
		{"no-eoi", base[:len(base)-2], ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJPEG(c.data)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
			if _, err := p.Packetize(frame(c.data, time.Now())); !errors.Is(err, c.want) {
				t.Fatalf("packetize: %v", err)
			}
		})
	}
	// Every truncation of a valid image is refused with an error, never a
	// panic and never a shorter "valid" image.
	for n := range len(base) - 1 {
		if _, err := ParseJPEG(base[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	if _, err := p.Packetize(capture.VideoFrame{Codec: capture.CodecH264, Data: base}); !errors.Is(err, ErrCodec) {
		t.Fatalf("h264 frame: %v", err)
	}
}

func TestPacketSizeTooSmall(t *testing.T) {
	if _, err := NewPacketizer(MinPacketSize-1, 1, 26); !errors.Is(err, capture.ErrPacketSize) {
		t.Fatalf("got %v", err)
	}
	if _, err := NewPacketizer(MinPacketSize, 1, 26); err != nil {
		t.Fatal(err)
	}
}

// stream packetizes n frames of data and returns each frame's packets.
func stream(t *testing.T, data []byte, n, size int) [][][]byte {
	t.Helper()
	p, err := NewPacketizer(size, 7, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	p.SetStart(65530, 0)
	at := time.Now()
	var out [][][]byte
	for i := range n {
		b, err := p.Packetize(frame(data, at.Add(time.Duration(i)*33*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, copyBurst(b))
	}
	return out
}

type result struct {
	frames [][]byte
	losses int
}

func feed(d *Depacketizer, pkts [][]byte) result {
	var r result
	for _, p := range pkts {
		f, ok, err := d.Push(p)
		if err != nil {
			if !errors.Is(err, capture.ErrMediaLost) {
				panic(err)
			}
			r.losses++
		}
		if ok {
			r.frames = append(r.frames, append([]byte{}, f.Data...))
		}
	}
	return r
}

func TestLoss(t *testing.T) {
	data := encodeTestJPEG(testPicture(160, 112, 5), encOpts{h: 2, v: 1, dri: 4})
	frames := stream(t, data, 4, 400)
	var whole []byte
	{
		r := feed(NewDepacketizer(), frames[0])
		whole = r.frames[0]
	}
	flat := func(skipFrame, skipPkt int, dup bool) [][]byte {
		var out [][]byte
		for fi, f := range frames {
			for pi, p := range f {
				if fi == skipFrame && pi == skipPkt {
					continue
				}
				out = append(out, p)
				if dup {
					out = append(out, p)
				}
			}
		}
		return out
	}
	// Drop each packet of frame 1 in turn: frame 1 never comes out, the
	// others come out whole, and the loss is reported. Dropping the last
	// one is the case of a new timestamp arriving before the marker.
	for pi := range frames[1] {
		d := NewDepacketizer()
		r := feed(d, flat(1, pi, false))
		if len(r.frames) != 3 {
			t.Fatalf("drop packet %d: %d frames", pi, len(r.frames))
		}
		for _, f := range r.frames {
			if !bytes.Equal(f, whole) {
				t.Fatalf("drop packet %d: a frame differs", pi)
			}
		}
		if r.losses == 0 || d.Stats().LostFrames != 1 || d.Stats().LostPackets != 1 {
			t.Fatalf("drop packet %d: losses %d stats %+v", pi, r.losses, d.Stats())
		}
	}
	// Duplicates are ignored.
	d := NewDepacketizer()
	r := feed(d, flat(-1, -1, true))
	if len(r.frames) != 4 || r.losses != 0 || d.Stats().Duplicates == 0 {
		t.Fatalf("duplicates: %d frames, %d losses, %+v", len(r.frames), r.losses, d.Stats())
	}
	// Swapped packets inside a frame: the frame is dropped, not mangled.
	sw := flat(-1, -1, false)
	k := len(frames[0]) + 1
	sw[k], sw[k+1] = sw[k+1], sw[k]
	d = NewDepacketizer()
	r = feed(d, sw)
	if len(r.frames) != 3 || r.losses == 0 {
		t.Fatalf("reordered: %d frames, %d losses", len(r.frames), r.losses)
	}
	for _, f := range r.frames {
		if !bytes.Equal(f, whole) {
			t.Fatal("reordered: a frame differs")
		}
	}
	// A whole frame missing between two good ones is reported, the rest
	// decodes.
	var gap [][]byte
	gap = append(gap, frames[0]...)
	gap = append(gap, frames[2]...)
	d = NewDepacketizer()
	r = feed(d, gap)
	if len(r.frames) != 2 || r.losses != 1 {
		t.Fatalf("missing frame: %d frames, %d losses", len(r.frames), r.losses)
	}
	// A corrupted fragment offset drops the frame.
	bad := flat(-1, -1, false)
	c := append([]byte{}, bad[2]...)
	c[rtpext.BareHeaderSize+3] ^= 0x40
	bad[2] = c
	d = NewDepacketizer()
	r = feed(d, bad)
	if len(r.frames) != 3 || r.losses == 0 || d.Stats().LostFrames != 1 {
		t.Fatalf("corrupt offset: %d frames, %d losses, %+v", len(r.frames), r.losses, d.Stats())
	}
}

func TestPacketizeAllocs(t *testing.T) {
	data := goJPEG(t, 320, 240, 80, 2)
	p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	d := NewDepacketizer()
	at := time.Now()
	f := frame(data, at)
	var pkts [][]byte
	run := func() {
		f.CaptureTime = f.CaptureTime.Add(33 * time.Millisecond)
		b, err := p.Packetize(f)
		if err != nil {
			t.Fatal(err)
		}
		pkts = b.Packets
	}
	run()
	if n := testing.AllocsPerRun(50, run); n != 0 {
		t.Fatalf("Packetize: %v allocs per frame", n)
	}
	push := func() {
		run()
		for _, pkt := range pkts {
			if _, _, err := d.Push(pkt); err != nil {
				t.Fatal(err)
			}
		}
	}
	push()
	if n := testing.AllocsPerRun(50, push); n != 0 {
		t.Fatalf("Packetize+Push: %v allocs per frame", n)
	}
}

func BenchmarkPacketize720p(b *testing.B) {
	data := goJPEG(b, 1280, 720, 80, 9)
	p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	f := frame(data, time.Now())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f.CaptureTime = f.CaptureTime.Add(33 * time.Millisecond)
		if _, err := p.Packetize(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDepacketize720p(b *testing.B) {
	data := goJPEG(b, 1280, 720, 80, 9)
	p, _ := NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	d := NewDepacketizer()
	f := frame(data, time.Now())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f.CaptureTime = f.CaptureTime.Add(33 * time.Millisecond)
		bu, err := p.Packetize(f)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.StartTimer()
		for _, pkt := range bu.Packets {
			if _, _, err := d.Push(pkt); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestSenderRestart: a sender that restarts (new SSRC, or the same SSRC
// with sequence numbers far behind) is followed, not taken for duplicates.
func TestSenderRestart(t *testing.T) {
	data := goJPEG(t, 64, 48, 75, 1)
	for _, sameSSRC := range []bool{false, true} {
		d := NewDepacketizer()
		a, _ := NewPacketizer(400, 1, 26)
		a.SetStart(5000, 0)
		ssrcB := uint32(2)
		if sameSSRC {
			ssrcB = 1
		}
		b, _ := NewPacketizer(400, ssrcB, 26)
		b.SetStart(100, 0)
		frames := 0
		for i, p := range []*Packetizer{a, a, b, b} {
			bu, err := p.Packetize(frame(data, time.Unix(int64(i), 0)))
			if err != nil {
				t.Fatal(err)
			}
			for _, pkt := range bu.Packets {
				if _, ok, err := d.Push(pkt); err != nil {
					t.Fatal(err)
				} else if ok {
					frames++
				}
			}
		}
		if frames != 4 {
			t.Fatalf("same SSRC %v: %d frames of 4", sameSSRC, frames)
		}
	}
}

// TestQFormula: senders may send Q 1-99 and no tables; the receiver then
// uses the RFC 2435 tables for that Q, which are exactly what image/jpeg
// (and libjpeg) write for that quality.
func TestQFormula(t *testing.T) {
	for _, q := range []int{10, 50, 75, 99} {
		data := goJPEG(t, 96, 64, q, 5)
		im, err := ParseJPEG(data)
		if err != nil {
			t.Fatal(err)
		}
		tables := AppendQTables(nil, q)
		if !bytes.Equal(tables[:64], im.QTables[0]) || !bytes.Equal(tables[64:], im.QTables[1]) {
			t.Fatalf("Q %d: tables differ from image/jpeg's", q)
		}
		// Rewrite our Q=255 packets as a Q-formula sender's.
		p, _ := NewPacketizer(400, 1, 26)
		b, err := p.Packetize(frame(data, time.Unix(1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		d := NewDepacketizer()
		var got Frame
		for k, pkt := range b.Packets {
			var rp rtp.Packet
			if err := rp.Unmarshal(pkt); err != nil {
				t.Fatal(err)
			}
			pl := append([]byte{}, rp.Payload...)
			pl[5] = byte(q)
			if k == 0 {
				pl = append(pl[:mainHeaderSize], pl[mainHeaderSize+qtHeaderSize+qtBytes:]...)
			}
			rp.Payload = pl
			out, err := rp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			f, ok, err := d.Push(out)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				got = f
			}
		}
		if got.Data == nil {
			t.Fatalf("Q %d: no frame", q)
		}
		if err := samePixels(decode(t, data), decode(t, got.Data)); err != nil {
			t.Fatalf("Q %d: %v", q, err)
		}
	}
	// Reserved Q values are refused.
	p, _ := NewPacketizer(0, 1, 26)
	b, _ := p.Packetize(frame(goJPEG(t, 32, 32, 50, 1), time.Unix(1, 0)))
	for _, q := range []byte{0, 100, 127} {
		pkt := append([]byte{}, b.Packets[0]...)
		pkt[rtpext.HeaderSize+5] = q
		if _, _, err := NewDepacketizer().Push(pkt); !errors.Is(err, capture.ErrBadPacket) {
			t.Fatalf("Q %d: %v", q, err)
		}
	}
}
