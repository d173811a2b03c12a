package h264dec

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/synth"
)

// TestRoundTrip encodes the synthetic pattern with the software encoder and
// decodes every access unit: each gives a picture of the right size close
// to the original (luma PSNR), and a P frame without its IDR fails cleanly.
func TestRoundTrip(t *testing.T) {
	if !Available || !h264enc.SoftwareAvailable() {
		t.Skip("*** SKIP: built without cgo: no OpenH264")
	}
	const w, h = 320, 240
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h, FPS: 30, Format: capture.CodecI420})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	eng, err := h264enc.NewSoftware(h264enc.Config{Width: w, Height: h, FPS: 30, Bitrate: 1_000_000, GOP: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var second []byte
	for i := range 10 {
		f, err := cam.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), f.Data...)
		au, err := eng.Encode(f.Data, false)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			second = append([]byte(nil), au...)
		}
		pic, pw, ph, err := dec.Decode(au)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if pic == nil || pw != w || ph != h {
			t.Fatalf("frame %d: picture %dx%d (%d bytes)", i, pw, ph, len(pic))
		}
		var se float64
		for j := range w * h {
			d := float64(pic[j]) - float64(orig[j])
			se += d * d
		}
		psnr := 10 * math.Log10(255*255/(se/float64(w*h)+1e-9))
		if psnr < 30 {
			t.Errorf("frame %d: luma PSNR %.1f dB", i, psnr)
		}
	}
	fresh, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if pic, _, _, err := fresh.Decode(second); err == nil && pic != nil {
		t.Errorf("a P frame without its IDR gave a picture")
	} else if err != nil && !errors.Is(err, ErrDecode) {
		t.Errorf("error %v, want ErrDecode", err)
	}
}
