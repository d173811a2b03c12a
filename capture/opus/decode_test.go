//go:build cgo && !noopus

package opus

import (
	"math"
	"testing"

	hopus "gopkg.in/hraban/opus.v2"
)

// TestDecoderRoundTrip: a 440 Hz tone encoded with libopus comes back from
// Decoder as 20 ms frames at 48 kHz with its energy at 440 Hz; a lost
// packet is concealed; garbage is an error and the decoder goes on.
func TestDecoderRoundTrip(t *testing.T) {
	enc, err := hopus.NewEncoder(Rate, 1, hopus.AppVoIP)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, FrameSamples)
	buf := make([]byte, maxFrameBytes)
	var out []int16
	for i := 0; i < 50; i++ {
		for j := range pcm {
			n := i*FrameSamples + j
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*440*float64(n)/Rate))
		}
		n, err := enc.Encode(pcm, buf)
		if err != nil {
			t.Fatal(err)
		}
		if i == 20 {
			if got, err := d.DecodeLost(); err != nil || len(got) != FrameSamples {
				t.Fatalf("concealment: %d samples, %v", len(got), err)
			}
			continue
		}
		got, err := d.Decode(buf[:n])
		if err != nil || len(got) != FrameSamples {
			t.Fatalf("packet %d: %d samples, %v", i, len(got), err)
		}
		out = append(out, got...)
	}
	tail := out[len(out)/2:]
	if at := goertzel(tail, 440, Rate); at < 1000*goertzel(tail, 1000, Rate) {
		t.Errorf("decoded tone is not at 440 Hz")
	}
	if _, err := d.Decode([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("garbage decoded")
	}
	if _, err := d.Decode(nil); err == nil {
		t.Error("empty payload decoded")
	}
	n, _ := enc.Encode(pcm, buf)
	if got, err := d.Decode(buf[:n]); err != nil || len(got) != FrameSamples {
		t.Errorf("after garbage: %d samples, %v", len(got), err)
	}
}
