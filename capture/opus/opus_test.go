//go:build cgo && !noopus

package opus

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/synth"
	"github.com/pion/rtp"
	hopus "gopkg.in/hraban/opus.v2"
)

// goertzel returns the power of x at freq Hz (sample rate fs).
func goertzel(x []int16, freq, fs float64) float64 {
	w := 2 * math.Pi * freq / fs
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + c*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// TestOpusToneDecodes encodes the synthetic microphone's 1 kHz tone (at
// 48 kHz and, resampled, at 16 kHz), parses the RTP, decodes every frame
// with libopus and checks the energy sits at 1 kHz.
func TestOpusToneDecodes(t *testing.T) {
	for _, rate := range []int{48000, 16000} {
		t.Run(fmt.Sprintf("%dHz", rate), func(t *testing.T) {
			t.Parallel()
			start := time.Unix(1_800_000_000, 0)
			clock := synth.NewVirtualClock(start)
			mic, err := synth.NewMic(synth.MicConfig{Rate: rate, ClickEvery: 10 * time.Second, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			defer mic.Close()
			p, err := NewPacketizer(0, 0x1234, PayloadType)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := hopus.NewDecoder(Rate, 1)
			if err != nil {
				t.Fatal(err)
			}
			var out []int16
			frame := make([]int16, FrameSamples)
			var lastSeq uint16
			var lastTS uint32
			npkt := 0
			for i := 0; i < 50; i++ {
				clock.Advance(capture.ChunkDuration)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := mic.ReadChunk(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				b, err := p.Packetize(c)
				if err != nil {
					t.Fatal(err)
				}
				for _, raw := range b.Packets {
					var pkt rtp.Packet
					if err := pkt.Unmarshal(raw); err != nil {
						t.Fatalf("packet %d: %v", npkt, err)
					}
					if pkt.PayloadType != PayloadType || pkt.SSRC != 0x1234 {
						t.Fatalf("packet %d: PT %d SSRC %x", npkt, pkt.PayloadType, pkt.SSRC)
					}
					if npkt > 0 && (pkt.SequenceNumber != lastSeq+1 || pkt.Timestamp != lastTS+FrameSamples) {
						t.Fatalf("packet %d: seq %d ts %d after %d %d", npkt, pkt.SequenceNumber, pkt.Timestamp, lastSeq, lastTS)
					}
					if _, err := rtpext.AbsCaptureTime(raw); err != nil {
						t.Fatalf("packet %d: abs-capture-time: %v", npkt, err)
					}
					lastSeq, lastTS = pkt.SequenceNumber, pkt.Timestamp
					n, err := dec.Decode(pkt.Payload, frame)
					if err != nil {
						t.Fatalf("packet %d: decode: %v", npkt, err)
					}
					if n != FrameSamples {
						t.Fatalf("packet %d: %d samples, want %d", npkt, n, FrameSamples)
					}
					out = append(out, frame[:n]...)
					npkt++
				}
			}
			if npkt < 45 {
				t.Fatalf("%d packets for 50 chunks", npkt)
			}
			// Skip the codec's and the resampler's start-up.
			tail := out[len(out)/4:]
			at1k := goertzel(tail, 1000, Rate)
			var total float64
			for _, v := range tail {
				total += float64(v) * float64(v)
			}
			// A pure tone's Goertzel power is about N/2 times its signal
			// energy; the ratio is 1 when all the energy is at 1 kHz.
			frac := at1k / (total * float64(len(tail)) / 2)
			rms := math.Sqrt(total / float64(len(tail)))
			for _, f := range []float64{500, 1500, 2000, 3000} {
				if o := goertzel(tail, f, Rate); o > at1k/1000 {
					t.Errorf("power at %.0f Hz is %.2g of 1 kHz's", f, o/at1k)
				}
			}
			t.Logf("in %d Hz: %d packets, decoded rms %.0f (tone 0.3 FS = %.0f rms), fraction at 1 kHz %.3f", rate, npkt, rms, 0.3*32767/math.Sqrt2, frac)
			if frac < 0.9 || rms < 0.5*0.3*32767/math.Sqrt2 {
				t.Fatalf("decoded signal is not the 1 kHz tone: fraction %.3f rms %.0f", frac, rms)
			}
		})
	}
}

func TestOpusErrors(t *testing.T) {
	p, err := NewPacketizer(0, 1, PayloadType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Packetize(capture.AudioChunk{}); err != ErrEmptyChunk {
		t.Fatalf("empty chunk: %v", err)
	}
	if _, err := p.Packetize(capture.AudioChunk{Samples: make([]int16, 7), Rate: 7}); err == nil {
		t.Fatal("7 Hz accepted")
	}
	if _, err := NewPacketizer(40, 1, PayloadType); err == nil {
		t.Fatal("40-byte packets accepted")
	}
}

func BenchmarkPacketize(b *testing.B) {
	p, err := NewPacketizer(0, 1, PayloadType)
	if err != nil {
		b.Fatal(err)
	}
	c := capture.AudioChunk{Samples: make([]int16, FrameSamples), Rate: Rate, CaptureTime: time.Now()}
	for i := range c.Samples {
		c.Samples[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/Rate))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.CaptureTime = c.CaptureTime.Add(capture.ChunkDuration)
		if _, err := p.Packetize(c); err != nil {
			b.Fatal(err)
		}
	}
}
