package synth

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// ReadCounter and ReadFlash read pictures that came over the network: any
// picture, of any size and content, gives an answer, never a panic.
func FuzzReadCounter(f *testing.F) {
	// Seeds in testdata/fuzz/FuzzReadCounter: frames of this camera as JPEG
	// (with and without the flash) and raw bytes.
	cam, err := NewCamera(CameraConfig{Width: 160, Height: 128})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a JPEG, when it decodes (a mutated frame; not one that merely
		// declares a huge size, which image/jpeg would allocate)...
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err != nil || cfg.Width*cfg.Height > 1<<20 {
			// not a picture worth decoding
		} else if img, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
			if n, ok := cam.ReadCounter(img); ok && n >= 1000000 {
				t.Fatalf("counter %d has more than %d digits", n, CounterDigits)
			}
			cam.ReadFlash(img)
		}
		// ...and as the pixels of a picture of the camera's size.
		g := image.NewGray(image.Rect(0, 0, 160, 128))
		if len(data) > 0 {
			for i := range g.Pix {
				g.Pix[i] = data[i%len(data)]
			}
		}
		if n, ok := cam.ReadCounter(g); ok && n >= 1000000 {
			t.Fatalf("counter %d has more than %d digits", n, CounterDigits)
		}
		cam.ReadFlash(g)
	})
}
