//go:build cgo && !noopus

package webrtc

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtp"
	hopus "gopkg.in/hraban/opus.v2"
)

// audioCollector keeps the audio packets a client received.
type audioCollector struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (a *audioCollector) add(raw []byte) {
	var p rtp.Packet
	if err := p.Unmarshal(raw); err != nil {
		return
	}
	p.Payload = append([]byte(nil), p.Payload...)
	a.mu.Lock()
	a.pkts = append(a.pkts, p)
	a.mu.Unlock()
}

func (a *audioCollector) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pkts)
}

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

// checkTone fails unless the energy of pcm (rate fs) sits at 1 kHz.
func checkTone(t *testing.T, what string, pcm []int16, fs float64) {
	t.Helper()
	tail := pcm[len(pcm)/4:]
	var total float64
	for _, v := range tail {
		total += float64(v) * float64(v)
	}
	frac := goertzel(tail, 1000, fs) / (total * float64(len(tail)) / 2)
	rms := math.Sqrt(total / float64(len(tail)))
	t.Logf("%s: %d samples, rms %.0f, fraction of the energy at 1 kHz %.3f", what, len(tail), rms, frac)
	if frac < 0.8 || rms < 2000 {
		t.Errorf("%s: not the 1 kHz tone (fraction %.3f, rms %.0f)", what, frac, rms)
	}
}

// TestWHEPOpus: the box publishes the synthetic microphone's 1 kHz tone as
// PCMU and, beside it, as Opus. A WHEP client offering Opus gets Opus RTP
// that libopus decodes to the tone; one offering only PCMU gets PCMU (the
// tone too); neither gets the other stream.
func TestWHEPOpus(t *testing.T) {
	testenv.Short(t)
	b := newBoxAudio(t, Config{}, relay.Config{}, false)
	mic, err := synth.NewMic(synth.MicConfig{Rate: 48000, ClickEvery: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := pcmu.NewPacketizer(0, rtpext.Random32(), capture.PayloadTypePCMU)
	if err != nil {
		t.Fatal(err)
	}
	op, err := opus.NewPacketizer(0, rtpext.Random32(), opus.PayloadType)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	micDone := make(chan struct{})
	defer func() { cancel(); <-micDone; mic.Close() }()
	go func() {
		defer close(micDone)
		for {
			c, err := mic.ReadChunk(ctx)
			if err != nil {
				return
			}
			for _, p := range []capture.AudioPacketizer{pp, op} {
				bu, err := p.Packetize(c)
				if err != nil {
					t.Error(err)
					return
				}
				if len(bu.Packets) > 0 {
					b.r.Publish(bu)
				}
			}
		}
	}()

	waitFor(t, 5*time.Second, "Opus to be published", b.r.PublishingOpus)
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	var withOpus, onlyPCMU audioCollector
	co, err := Dial(dctx, b.url(), ClientOptions{Loopback: true, AudioOut: withOpus.add})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	cp, err := Dial(dctx, b.url(), ClientOptions{Loopback: true, PCMUOnly: true, AudioOut: onlyPCMU.add})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	waitFor(t, 10*time.Second, "1 s of audio on both clients", func() bool { return withOpus.count() >= 50 && onlyPCMU.count() >= 50 })
	so, sp := co.Stats(), cp.Stats()
	if so.AudioCodec != "audio/opus" || sp.AudioCodec != "audio/PCMU" {
		t.Fatalf("audio codecs %q and %q, want audio/opus and audio/PCMU", so.AudioCodec, sp.AudioCodec)
	}

	withOpus.mu.Lock()
	dec, err := hopus.NewDecoder(opus.Rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []int16
	frame := make([]int16, opus.FrameSamples)
	ssrc := withOpus.pkts[0].SSRC
	for i, p := range withOpus.pkts {
		if p.PayloadType != capture.PayloadTypeOpus || p.SSRC != ssrc {
			t.Fatalf("Opus client: packet %d has PT %d SSRC %x (first SSRC %x)", i, p.PayloadType, p.SSRC, ssrc)
		}
		n, err := dec.Decode(p.Payload, frame)
		if err != nil {
			t.Fatalf("Opus client: packet %d: %v", i, err)
		}
		got = append(got, frame[:n]...)
	}
	withOpus.mu.Unlock()
	checkTone(t, "Opus client (libopus decode)", got, opus.Rate)

	onlyPCMU.mu.Lock()
	got = got[:0]
	var lin []int16
	for i, p := range onlyPCMU.pkts {
		if p.PayloadType != capture.PayloadTypePCMU {
			t.Fatalf("PCMU client: packet %d has PT %d", i, p.PayloadType)
		}
		lin = pcmu.Decode(append(lin[:0], make([]int16, len(p.Payload))...), p.Payload)
		got = append(got, lin...)
	}
	onlyPCMU.mu.Unlock()
	checkTone(t, "PCMU client", got, pcmu.Rate)
}
