package firmware

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/drivers/encoder"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/media"
)

// softwareOnly makes ChooseVideo see no camera H.264 and no hardware
// encoder, whatever the machine has.
var softwareOnly = media.Probes{
	CameraH264: func(string) (string, bool) { return "", false },
	Hardware:   func() (encoder.Found, error) { return encoder.Found{}, encoder.ErrNoDevice },
	Software:   h264enc.SoftwareAvailable,
}

// TestSendH264 is `callbox send --codec h264 --to HOST:PORT --sdp FILE`
// received by ffmpeg and by GStreamer opening the SDP file as it is
// (ffmpeg -i FILE; gst-launch filesrc ! sdpdemux): both decode pictures
// that show the synthetic camera's counter and match its pictures.
func TestSendH264(t *testing.T) {
	testenv.Short(t)
	if !h264enc.SoftwareAvailable() {
		testenv.Unavailable(t, "no software H.264 encoder in this build")
	}
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	gst := testenv.LookPath(t, "gst-launch-1.0")
	const w, h = 640, 480
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h})
	if err != nil {
		t.Fatal(err)
	}
	for _, rx := range []string{"ffmpeg", "gstreamer"} {
		t.Run(rx, func(t *testing.T) {
			vc, ac := listenPair(t)
			port := vc.LocalAddr().(*net.UDPAddr).Port
			vc.Close() // the receiver binds them
			ac.Close()
			sdpPath := filepath.Join(t.TempDir(), "s.sdp")
			cfg := sendConfig{to: fmt.Sprintf("127.0.0.1:%d", port), sdpPath: sdpPath, sdpOnly: true, probes: &softwareOnly,
				h264: media.H264Config{Codec: "h264", GOP: 10, Bitrate: 1_000_000}}
			cfg.opts = media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: w, Height: h, FPS: 30}, PacketSize: 1200}
			if err := runSend(context.Background(), cfg, io.Discard, quietLog); err != nil {
				t.Fatal(err)
			}
			sdp, _ := os.ReadFile(sdpPath)
			if !strings.Contains(string(sdp), "H264/90000") || !strings.Contains(string(sdp), "profile-level-id=42e01f") {
				t.Fatalf("SDP:\n%s", sdp)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			var cmd *exec.Cmd
			if rx == "ffmpeg" {
				cmd = exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-v", "error", "-protocol_whitelist", "file,udp,rtp",
					"-i", sdpPath, "-map", "0:v", "-fps_mode", "passthrough", "-frames:v", "20", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
			} else {
				cmd = exec.CommandContext(ctx, gst, "-q", "filesrc", "location="+sdpPath, "!", "sdpdemux", "latency=0", "!",
					"rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "video/x-raw,format=I420", "!", "fdsink", "fd=1")
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			pics := make(chan []byte, 64)
			go func() {
				defer close(pics)
				for range 20 {
					p := make([]byte, capture.I420Size(w, h))
					if _, err := io.ReadFull(out, p); err != nil {
						return
					}
					pics <- p
				}
			}()
			// Send until the receiver has its pictures.
			sctx, stop := context.WithCancel(ctx)
			sent := make(chan error, 1)
			go func() {
				c := cfg
				c.sdpOnly, c.sdpPath = false, ""
				sent <- runSend(sctx, c, io.Discard, quietLog)
			}()
			var got [][]byte
			for p := range pics {
				got = append(got, p)
			}
			stop()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if len(got) < 20 {
				t.Fatalf("%s decoded %d pictures:\n%s", rx, len(got), stderr.String())
			}
			worst := 99.0
			for i, p := range got {
				img := &image.YCbCr{Y: p[:w*h], Cb: p[w*h : w*h+w*h/4], Cr: p[w*h+w*h/4:], YStride: w, CStride: w / 2,
					SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
				n, ok := cam.ReadCounter(img)
				if !ok {
					t.Fatalf("%s picture %d: counter unreadable", rx, i)
				}
				ref := cam.AppendI420(nil, n, cam.ReadFlash(img))
				var sum float64
				for j := range w * h {
					d := float64(ref[j]) - float64(p[j])
					sum += d * d
				}
				worst = math.Min(worst, 10*math.Log10(255*255/math.Max(sum/float64(w*h), 1e-9)))
			}
			t.Logf("%s: %d pictures, worst luma PSNR %.1f dB", rx, len(got), worst)
			if worst < 35 {
				t.Errorf("%s: worst luma PSNR %.1f dB, want >= 35", rx, worst)
			}
		})
	}
}

// TestRunVideoChoice: the appliance's choice as /api/state shows it: auto
// with an encoder sends H.264 beside the camera's JPEG (the relay keeps
// its own clients on JPEG), and takes the encoder rather than a camera's
// own H.264 for it; h264 sends H.264 only; h264 with no encoder is an
// error that stops the start.
func TestRunVideoChoice(t *testing.T) {
	base := media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: 320, Height: 240, FPS: 30}}
	none := media.Probes{
		CameraH264: softwareOnly.CameraH264, Hardware: softwareOnly.Hardware,
		Software: func() bool { return false },
	}
	camera := softwareOnly
	camera.CameraH264 = func(string) (string, bool) { return "/dev/video9", true }
	for _, c := range []struct {
		codec     string
		probes    media.Probes
		name      string
		reason    string
		encode    bool
		alongside bool
		err       bool
	}{
		{"auto", softwareOnly, "h264", "JPEG beside it", true, true, false},
		{"auto", camera, "h264", "cannot run beside its JPEG", true, true, false},
		{"h264", camera, "h264", "encodes H.264 itself", false, false, false},
		{"h264", softwareOnly, "h264", "software encoder", true, false, false},
		{"jpeg", softwareOnly, "jpeg", "configured", false, false, false},
		{"h264", none, "", "", false, false, true},
		{"auto", none, "jpeg", "no software encoder", false, false, false},
	} {
		if !h264enc.SoftwareAvailable() && c.probes.Software() {
			continue
		}
		pr := c.probes
		sink := &nativeSink{}
		p := &mediaPart{h264: media.H264Config{Codec: c.codec}, probes: &pr, log: quietLog, sink: sink}
		mc := base
		err := p.chooseVideo(&mc)
		if (err != nil) != c.err {
			t.Errorf("%s: error %v", c.codec, err)
			continue
		}
		if err != nil {
			continue
		}
		v := p.videoChoice()
		if v.Name != c.name || !strings.Contains(v.Reason, c.reason) || (mc.Encode != nil) != c.encode {
			t.Errorf("%s: %+v (encoder stage %v)", c.codec, v, mc.Encode != nil)
		}
		if mc.EncodeAlongside != c.alongside || (v.Alongside == "jpeg") != c.alongside ||
			(sink.native == capture.CodecJPEG) != c.alongside {
			t.Errorf("%s: alongside %v, %q, relay native %v; want %v", c.codec, mc.EncodeAlongside, v.Alongside, sink.native, c.alongside)
		}
		if c.alongside && (mc.Video.Format != capture.CodecJPEG || v.Transports["websocket"] != "jpeg" || v.Transports["webrtc"] != "h264") {
			t.Errorf("%s: camera format %v, transports %v", c.codec, mc.Video.Format, v.Transports)
		}
		b := &boardPart{video: p}
		if st := b.videoState(); st == nil || st.Name != c.name {
			t.Errorf("%s: /api/state video %+v", c.codec, st)
		}
	}
}

// nativeSink records the relay's native codec the media part sets.
type nativeSink struct {
	nullSink
	native capture.Codec
}

func (s *nativeSink) SetNativeVideo(c capture.Codec) { s.native = c }
