package box

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/peer/proto"
	"github.com/pion/transport/v5/vnet"
)

// rawMedia is the synthetic camera as raw pictures (what the call's H.264
// encoder takes) and a 48 kHz microphone.
func rawMedia(w, h, fps int) func(*CallerConfig) { return noisyMedia(w, h, fps, 0) }

// noisyMedia is rawMedia with sensor noise: the encoder spends the
// bitrate it is given, as on a real room.
func noisyMedia(w, h, fps, noise int) func(*CallerConfig) {
	return func(c *CallerConfig) {
		c.Media = SynthMedia(synth.CameraConfig{Width: w, Height: h, FPS: fps, Format: capture.CodecI420, Noise: noise}, synth.MicConfig{Rate: 48000})
	}
}

// frameLog keeps the whole frames and decoded audio a box received.
type frameLog struct {
	mu        sync.Mutex
	h264      bytes.Buffer // the access units, concatenated: an Annex B stream
	units     int
	keyframes int
	codecs    map[capture.Codec]int
	audio     map[int]int // chunks by sample rate
	bursts    int
}

func (fl *frameLog) adjust(next func(*CallerConfig)) func(*CallerConfig) {
	fl.codecs, fl.audio = map[capture.Codec]int{}, map[int]int{}
	return func(c *CallerConfig) {
		if next != nil {
			next(c)
		}
		c.OnFrame = func(_ proto.PeerInfo, f capture.VideoFrame) {
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.codecs[f.Codec]++
			if f.Codec == capture.CodecH264 {
				if fl.units == 0 && !f.Keyframe {
					panic("the first H.264 frame passed on is not a keyframe")
				}
				fl.h264.Write(f.Data)
				fl.units++
				if f.Keyframe {
					fl.keyframes++
				}
			}
		}
		c.OnAudio = func(_ proto.PeerInfo, a capture.AudioChunk) {
			fl.mu.Lock()
			fl.audio[a.Rate]++
			fl.mu.Unlock()
		}
		c.OnMedia = func(_ proto.PeerInfo, b capture.Burst) {
			fl.mu.Lock()
			fl.bursts++
			fl.mu.Unlock()
		}
	}
}

// decodeH264 decodes an Annex B stream with ffmpeg, failing on the first
// error (-xerror), and returns the number of pictures.
func decodeH264(t *testing.T, stream []byte) int {
	t.Helper()
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-xerror", "-f", "h264", "-i", "-", "-f", "framemd5", "-")
	cmd.Stdin = bytes.NewReader(stream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg: %v: %s", err, stderr.String())
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// TestCallH264Opus: two boxes negotiate H.264 and Opus; every access unit
// received is whole and the stream of them decodes without an error, the
// first being a keyframe; Opus decodes to 48 kHz chunks; the RTP bursts
// for the call relay come too.
func TestCallH264Opus(t *testing.T) {
	testenvShort(t)
	l := newVLab(t)
	var la, lb frameLog
	a := l.boxWith("a", "A", coneNAT, "10.201.1.2", la.adjust(rawMedia(640, 360, 30)), nil)
	b := l.boxWith("b", "B", coneNAT, "10.201.2.2", lb.adjust(rawMedia(640, 360, 30)), nil)
	pair(t, a, b)
	sa, sb := runCall(t, a, b, func() {})
	for _, x := range []struct {
		name string
		s    Summary
		fl   *frameLog
	}{{"a", sa, &la}, {"b", sb, &lb}} {
		s, fl := x.s, x.fl
		t.Logf("%s: sent %s/%s received %s/%s step %s frames %d (%.1f fps) latency p50 %.1f p99 %.1f ms keyframes %d audio %d estimate %d encoder %d max rtp %d",
			x.name, s.VideoSent, s.AudioCodecSent, s.VideoReceived, s.AudioReceivedC, s.Step, s.FramesDecoded, s.ReceivedFPS,
			s.LatencyP50MS, s.LatencyP99MS, s.KeyframesSent, s.AudioReceived, s.Estimate, s.EncoderBitrate, s.MaxRTPPacket)
		if s.VideoSent != "h264" || s.VideoReceived != "h264" || s.AudioCodecSent != "opus" || s.AudioReceivedC != "opus" {
			t.Errorf("%s: codecs sent %s/%s received %s/%s, want h264/opus", x.name, s.VideoSent, s.AudioCodecSent, s.VideoReceived, s.AudioReceivedC)
		}
		if s.MaxRTPPacket > MaxRTPPacket(DefaultMaxDatagram) {
			t.Errorf("%s: RTP packet of %d bytes over the budget %d", x.name, s.MaxRTPPacket, MaxRTPPacket(DefaultMaxDatagram))
		}
		if s.LatencyFrames == 0 {
			t.Errorf("%s: no frame carried abs-capture-time", x.name)
		}
		fl.mu.Lock()
		stream, units, keys, audio48, bursts := bytes.Clone(fl.h264.Bytes()), fl.units, fl.keyframes, fl.audio[48000], fl.bursts
		fl.mu.Unlock()
		if units < 10 || keys < 1 {
			t.Fatalf("%s: %d access units, %d keyframes", x.name, units, keys)
		}
		if pics := decodeH264(t, stream); pics != units {
			t.Errorf("%s: ffmpeg decoded %d pictures of %d access units", x.name, pics, units)
		}
		if audio48 < 20 {
			t.Errorf("%s: %d decoded Opus chunks", x.name, audio48)
		}
		if bursts < units {
			t.Errorf("%s: %d bursts for the call relay, %d frames", x.name, bursts, units)
		}
	}
	if l.maxUDP.Load() > DefaultMaxDatagram {
		t.Errorf("largest datagram %d bytes exceeds the %d limit (S8)", l.maxUDP.Load(), DefaultMaxDatagram)
	}
}

// TestCallOlderBox: a box from before H.264 calls (JPEG and PCMU only, no
// congestion control) and a new one agree on JPEG and PCMU, whichever of
// them calls.
func TestCallOlderBox(t *testing.T) {
	testenvShort(t)
	for _, newCalls := range []bool{true, false} {
		name := "new calls old"
		if !newCalls {
			name = "old calls new"
		}
		t.Run(name, func(t *testing.T) {
			l := newVLab(t)
			var ln, lo frameLog
			nb := l.boxWith("new", "A", coneNAT, "10.201.1.2", ln.adjust(rawMedia(320, 240, 15)), nil)
			ob := l.boxWith("old", "B", coneNAT, "10.201.2.2", lo.adjust(func(c *CallerConfig) { c.LegacyMedia = true }), nil)
			pair(t, nb, ob)
			var sn, so Summary
			if newCalls {
				sn, so = runCall(t, nb, ob, func() {})
			} else {
				so, sn = runCall(t, ob, nb, func() {})
			}
			if sn.VideoSent != "jpeg" || sn.AudioCodecSent != "pcmu" || sn.VideoReceived != "jpeg" || sn.AudioReceivedC != "pcmu" {
				t.Errorf("new box: sent %s/%s received %s/%s, want jpeg/pcmu", sn.VideoSent, sn.AudioCodecSent, sn.VideoReceived, sn.AudioReceivedC)
			}
			if so.VideoReceived != "jpeg" || so.FramesDecoded < 10 || sn.FramesDecoded < 10 {
				t.Errorf("old box received %s, decoded %d; new decoded %d", so.VideoReceived, so.FramesDecoded, sn.FramesDecoded)
			}
			ln.mu.Lock()
			defer ln.mu.Unlock()
			if ln.codecs[capture.CodecJPEG] < 10 || ln.audio[capture.PCMUClockRate] < 20 {
				t.Errorf("new box's OnFrame/OnAudio: %v frames, %v audio chunks", ln.codecs, ln.audio)
			}
		})
	}
}

// waitSummary polls call's summary until ok or the budget runs out.
func waitSummary(t *testing.T, call *Call, budget time.Duration, ok func(Summary) bool) (Summary, bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		s := call.Summary()
		if ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		select {
		case <-call.Done():
			return call.Summary(), false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestCallFollowsThrottledPath: a 720p call over a path that is then
// throttled to 250 kbit/s (pion vnet's token bucket on the receiving box's
// link): the sender's bandwidth estimate (transport-cc feedback, GCC)
// falls, the encoder's bitrate follows it and the video steps down; when
// the limit is lifted the estimate climbs back and the video steps up.
// The camera is 640x360 with sensor noise (the encoder spends what it is
// given, so the estimate is not limited by what the application sends)
// and the ladder's sizes and thresholds are scaled down from DefaultLadder
// so that the climb back fits a few seconds (GCC grows the estimate by 8%
// a second) and two encoders fit this shared machine's cores.
func TestCallFollowsThrottledPath(t *testing.T) {
	testenvShort(t)
	l := newVLab(t)
	ladder := []Step{{640, 360, 30, 450_000}, {480, 270, 30, 180_000}, {320, 180, 15, 0}}
	const open = 20_000_000
	tbf := vnet.NewTBFQueue(open, 64<<10, 48<<10)
	var queue *vnet.Queue
	a := l.boxWith("a", "A", coneNAT, "10.201.1.2", func(c *CallerConfig) {
		noisyMedia(640, 360, 30, 6)(c)
		c.Ladder = ladder
		c.StartBitrate = 1_000_000
	}, nil)
	b := l.boxWith("b", "B", coneNAT, "10.201.2.2", rawMedia(160, 120, 15), func(n vnet.NIC) vnet.NIC {
		q, err := vnet.NewQueue(n, tbf)
		if err != nil {
			t.Fatal(err)
		}
		queue = q
		return q
	})
	t.Cleanup(func() { queue.Close() })
	pair(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := a.caller.Call(ctx, b.client.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer a.caller.HangUp()
	s, ok := waitSummary(t, ca, 15*time.Second, func(s Summary) bool {
		return s.Step == "640x360@30" && s.KeyframesSent > 0 && s.FramesSent > 30
	})
	if !ok {
		t.Fatalf("not at the top step before the throttle: %+v", s)
	}
	t.Logf("open path: step %s estimate %d encoder %d", s.Step, s.Estimate, s.EncoderBitrate)
	before := s.EncoderBitrate
	t0 := time.Now()
	tbf.SetRate(250_000)
	s, ok = waitSummary(t, ca, 20*time.Second, func(s Summary) bool {
		return s.StepDowns > 0 && s.Estimate < 400_000 && s.EncoderBitrate < 400_000
	})
	if !ok {
		t.Fatalf("throttled to 250 kbit/s: no step down within 20 s: %+v", s)
	}
	t.Logf("throttled: step down to %s after %v, estimate %d, encoder %d (was %d)", s.Step, time.Since(t0).Round(100*time.Millisecond), s.Estimate, s.EncoderBitrate, before)
	if s.EncoderBitrate >= before || s.EncoderBitrate > 400_000 {
		t.Errorf("the encoder's bitrate %d did not follow the estimate %d down (was %d)", s.EncoderBitrate, s.Estimate, before)
	}
	down := s.Step
	t1 := time.Now()
	tbf.SetRate(open)
	s, ok = waitSummary(t, ca, 30*time.Second, func(s Summary) bool { return s.StepUps > 0 })
	if !ok {
		t.Fatalf("limit lifted: no step up within 30 s: %+v", s)
	}
	t.Logf("lifted: step up from %s to %s after %v, estimate %d, encoder %d; lowest %s, %d down / %d up; PLIs answered %d, keyframes %d",
		down, s.Step, time.Since(t1).Round(100*time.Millisecond), s.Estimate, s.EncoderBitrate, s.LowestStep, s.StepDowns, s.StepUps, s.KeyRequests, s.KeyframesSent)
	if cb := b.caller.Current(); cb != nil {
		sb := cb.Summary()
		t.Logf("receiver: %d frames whole, %d lost, %.1f fps, latency p50 %.0f p99 %.0f ms", sb.FramesDecoded, sb.FramesLost, sb.ReceivedFPS, sb.LatencyP50MS, sb.LatencyP99MS)
	}
}
