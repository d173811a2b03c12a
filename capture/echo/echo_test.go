//go:build cgo && !nospeex

package echo

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture/echo/echotest"
)

// rate is the microphone's and the speaker's; the canceller runs at
// lowRate (Stage resamples).
const (
	rate    = 48000
	lowRate = 16000
)

// scene is a synthetic room: the far end talks alone for farAlone, then
// both talk for doubleTalk.
type scene struct {
	far, near, echo, mic []int16
	dtFrom, dtTo         int
}

func makeScene(room echotest.Room, rate int, farAlone, doubleTalk time.Duration) scene {
	n := int((farAlone + doubleTalk).Seconds() * float64(rate))
	dtFrom := int(farAlone.Seconds() * float64(rate))
	far := echotest.Speech(echotest.Talker{F0: 120, Seed: 1}, rate, n, 0.5)
	nearTalk := echotest.Speech(echotest.Talker{F0: 210, Seed: 2}, rate, n-dtFrom, 0.25)
	near := make([]int16, n)
	copy(near[dtFrom:], nearTalk)
	room.Rate = rate
	echo := room.Apply(far)
	// The microphone's own noise, -70 dBFS.
	rng := rand.New(rand.NewPCG(3, 3))
	noise := make([]float64, n)
	for i := range noise {
		noise[i] = rng.NormFloat64() * 32768 * 0.000316
	}
	return scene{far: far, near: near, echo: echotest.Mix(echo), mic: echotest.Mix(echo, echotest.Float(near), noise), dtFrom: dtFrom, dtTo: n}
}

// roomScene is the scene the ERLE tests share (building it convolves
// every sample with the room: the costliest part under qemu-user): the
// far end alone for 10 s (8 s with -short, the cross-architecture runs),
// then 4 s (3 s) of double talk.
var roomScene = sync.OnceValue(func() scene {
	if testing.Short() {
		return makeScene(room, rate, 8*time.Second, 3*time.Second)
	}
	return makeScene(room, rate, 10*time.Second, 4*time.Second)
})

// run cancels s's echo chunk by chunk (20 ms, as the microphone gives it)
// at the canceller's rate.
func run(t testing.TB, cfg Config, s scene) []int16 {
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := make([]int16, len(s.mic))
	chunk := c.Config().Rate / 50
	for i := 0; i+chunk <= len(s.mic); i += chunk {
		if err := c.Process(s.mic[i:i+chunk], s.far[i:i+chunk], out[i:i+chunk]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var room = echotest.Room{DelayMS: 30, GainDB: -6, TailMS: 40, Seed: 7}

// TestERLESyntheticRoom: the production path (48 kHz microphone and
// speaker, resampled to the canceller's 16 kHz by the Stage). The far
// end talks alone for 10 s, ERLE over its part after 4 s (the filter
// converges in about 2-3 s of speech); then double talk, the near end's
// level kept within 3 dB.
func TestERLESyntheticRoom(t *testing.T) {
	s := roomScene()
	for _, tc := range []struct {
		name    string
		cfg     Config
		minERLE float64
	}{
		{"mdf+preprocess", Config{}, 25},
		{"mdf only", Config{NoPreprocess: true}, 10},
	} {
		out, _ := runStage(t, tc.cfg, s)
		erle := echotest.ERLE(s.mic, out, 4*rate, s.dtFrom)
		nearLvl := echotest.LevelDBFS(s.near, s.dtFrom+rate, s.dtTo)
		outLvl := echotest.LevelDBFS(out, s.dtFrom+rate, s.dtTo)
		echoLvl := echotest.LevelDBFS(s.echo, 4*rate, s.dtFrom)
		t.Logf("%s: echo %.1f dBFS, ERLE %.1f dB (far end alone, from 4 s); double talk: near end %.1f dBFS, out %.1f dBFS (%+.1f dB)",
			tc.name, echoLvl, erle, nearLvl, outLvl, outLvl-nearLvl)
		if erle < tc.minERLE {
			t.Errorf("%s: ERLE %.1f dB, want >= %v", tc.name, erle, tc.minERLE)
		}
		if d := outLvl - nearLvl; d < -3 || d > 3 {
			t.Errorf("%s: near end's level changed by %+.1f dB in double talk, want within 3 dB", tc.name, d)
		}
	}
}

func TestEchoDelayFound(t *testing.T) {
	s := makeScene(room, lowRate, 6*time.Second, 0)
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := make([]int16, len(s.mic))
	if err := c.Process(s.mic, s.far, out); err != nil {
		t.Fatal(err)
	}
	if d := c.EchoDelay(); d < 29*time.Millisecond || d > 32*time.Millisecond {
		t.Fatalf("echo delay %v, want the room's 30 ms", d)
	}
}

func TestProcessChecks(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Process(make([]int16, 320), make([]int16, 320), make([]int16, 319)); err == nil {
		t.Fatal("mismatched lengths accepted")
	}
	if err := c.Process(make([]int16, 400), make([]int16, 400), make([]int16, 400)); err == nil {
		t.Fatal("a partial frame accepted")
	}
	in := make([]int16, 640)
	if err := c.Process(in, make([]int16, 640), in); err != nil {
		t.Fatalf("in place: %v", err)
	}
	c.Close()
	if err := c.Process(in, in, in); err != ErrClosed {
		t.Fatalf("after close: %v", err)
	}
	if _, err := New(Config{Rate: 96000}); err == nil {
		t.Fatal("96 kHz accepted")
	}
}

// BenchmarkProcess is the canceller's cost per 20 ms chunk at 16 kHz with
// the default 200 ms tail, with and without the preprocessor; ratio_rt is
// that as a fraction of real time on one core (the same for any frame
// length: per 10 ms it is half the chunk's cost).
func BenchmarkProcess(b *testing.B) {
	for _, cfg := range []struct {
		name string
		c    Config
	}{{"mdf+preprocess", Config{}}, {"mdf", Config{NoPreprocess: true}}} {
		b.Run(cfg.name, func(b *testing.B) {
			const rate = lowRate
			s := makeScene(room, rate, 2*time.Second, 0)
			c, err := New(cfg.c)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const frame = rate / 50
			out := make([]int16, frame)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				j := (i * frame) % (len(s.mic) - frame)
				c.Process(s.mic[j:j+frame], s.far[j:j+frame], out)
			}
			b.ReportMetric(time.Since(start).Seconds()/float64(b.N)/0.020, "ratio_rt")
		})
	}
}
