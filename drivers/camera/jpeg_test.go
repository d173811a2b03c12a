package camera

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

func TestJPEGLength(t *testing.T) {
	var b bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 32, 16))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7) // busy content: 0xFF bytes get stuffed
	}
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	j := b.Bytes()
	cases := []struct {
		name string
		in   []byte
		want int
	}{
		{"exact", j, len(j)},
		{"stale tail with an old EOI", append(append(append([]byte{}, j...), 1, 2, 0xFF, 0xD9), j...), len(j)},
		{"truncated", j[:len(j)-10], 0},
		{"not a jpeg", []byte("hello world"), 0},
		{"empty", nil, 0},
		{"SOI only", []byte{0xFF, 0xD8}, 0},
		{"bad segment length", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0, 0}, 0},
	}
	for _, c := range cases {
		if got := jpegLength(c.in); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func FuzzJPEGLength(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := jpegLength(b); n < 0 || n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
	})
}

// TestTrimAccessUnit: the first access unit of a buffer stays whole (its
// parameter sets, every slice of a multi-slice picture); the stale tail of
// another picture behind it goes.
func TestTrimAccessUnit(t *testing.T) {
	idr := []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88, 9, 0, 0, 1, 0x65, 0x40, 9}
	p := []byte{0, 0, 0, 1, 0x41, 0x9a, 7}
	for _, c := range []struct {
		name     string
		in, want []byte
	}{
		{"idr alone (second slice kept)", idr, idr},
		{"p alone", p, p},
		{"p then a stale idr", append(append([]byte{}, p...), idr...), p},
		{"idr then a stale p slice", append(append([]byte{}, idr...), p...), idr},
		{"p then stale bytes and an AUD", append(append([]byte{}, p...), 0x12, 0x34, 0, 0, 1, 9, 0xf0), append(append([]byte{}, p...), 0x12, 0x34)},
		{"trailing zeros kept", append(append([]byte{}, p...), 0, 0, 0, 0), append(append([]byte{}, p...), 0, 0, 0, 0)},
		{"empty", nil, nil},
	} {
		if got := trimAccessUnit(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, got, c.want)
		}
	}
}

func FuzzTrimAccessUnit(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x41, 0x9a, 7, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := trimAccessUnit(b)
		if !bytes.HasPrefix(b, got) {
			t.Fatalf("not a prefix")
		}
		if len(got) > 0 && !bytes.Equal(trimAccessUnit(got), got) {
			t.Fatalf("trimming twice cuts more")
		}
	})
}
