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
