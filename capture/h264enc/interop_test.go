package h264enc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/internal/testenv"
)

// decoder is a program that receives our RTP and writes the pictures it
// decodes to its stdout as raw I420.
type decoder struct {
	name   string
	port   int
	cmd    *exec.Cmd
	stderr bytes.Buffer
	mu     sync.Mutex
	pics   [][]byte
	done   chan struct{}
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func startDecoder(t *testing.T, ctx context.Context, name string, port, picSize, want int, argv ...string) *decoder {
	d := &decoder{name: name, port: port, done: make(chan struct{})}
	d.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	})
	go func() {
		defer close(d.done)
		for range want {
			pic := make([]byte, picSize)
			if _, err := io.ReadFull(out, pic); err != nil {
				return
			}
			d.mu.Lock()
			d.pics = append(d.pics, pic)
			d.mu.Unlock()
		}
	}()
	return d
}

// psnr returns the PSNR in dB of b against a (same length, 8-bit samples).
func psnr(a, b []byte) float64 {
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	if sum == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/(sum/float64(len(a))))
}

// TestInteropPSNR: the synthetic camera's 720p30 pictures, encoded by the
// software encoder at 2 Mbit/s and sent as RFC 6184 RTP, are decoded by
// ffmpeg and by GStreamer (rtph264depay, avdec_h264); each decoded picture
// is matched to its source picture by the frame counter it shows and must
// be within 35 dB PSNR (luma, averaged; no picture under 32 dB).
func TestInteropPSNR(t *testing.T) {
	testenv.Short(t)
	if !SoftwareAvailable() {
		testenv.Unavailable(t, "no software encoder in this build")
	}
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	gst := testenv.LookPath(t, "gst-launch-1.0")
	const w, h, bitrate, want = 1280, 720, 2_000_000, 45
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h, Format: capture.CodecI420})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Width: w, Height: h, FPS: 30, Bitrate: bitrate, GOP: 30}
	eng, err := NewSoftware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(cam, eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	picSize := capture.I420Size(w, h)
	fport, gport := freeUDPPort(t), freeUDPPort(t)
	sdp := filepath.Join(dir, "h264.sdp")
	if err := os.WriteFile(sdp, []byte(fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=callbox\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n", fport)), 0o644); err != nil {
		t.Fatal(err)
	}
	decs := []*decoder{
		startDecoder(t, ctx, "ffmpeg", fport, picSize, want, ffmpeg, "-hide_banner", "-v", "error",
			"-protocol_whitelist", "file,udp,rtp", "-i", sdp, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"),
		startDecoder(t, ctx, "gstreamer", gport, picSize, want, gst, "-q",
			"udpsrc", "address=127.0.0.1", fmt.Sprintf("port=%d", gport), "buffer-size=4194304",
			"caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96",
			"!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "video/x-raw,format=I420", "!", "fdsink", "fd=1"),
	}
	var conns []*net.UDPConn
	for _, d := range decs {
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.port})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	p, err := rtph264.NewPacketizer(0, 0xCA11B0C5, capture.PayloadTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	var frames, bytesOut int
	finished := func() bool {
		for _, d := range decs {
			select {
			case <-d.done:
			default:
				return false
			}
		}
		return true
	}
	for !finished() {
		f, err := st.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("after %d frames: %v\nffmpeg: %s\ngstreamer: %s", frames, err, decs[0].stderr.String(), decs[1].stderr.String())
		}
		frames++
		bytesOut += len(f.Data)
		b, err := p.Packetize(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkt := range b.Packets {
			for _, c := range conns {
				_, _ = c.Write(pkt) // refused until the decoder listens
			}
		}
	}
	kbps := float64(bytesOut) * 8 / (float64(frames) / 30) / 1000
	t.Logf("sent %d frames, %.0f kbit/s (target %d)", frames, kbps, bitrate/1000)
	if kbps > 1.25*bitrate/1000 {
		t.Errorf("bitrate %.0f kbit/s is over the %d kbit/s target by more than 25%%", kbps, bitrate/1000)
	}
	for _, d := range decs {
		d.mu.Lock()
		pics := d.pics
		d.mu.Unlock()
		if len(pics) < want {
			t.Fatalf("%s decoded %d pictures, want %d: %s", d.name, len(pics), want, d.stderr.String())
		}
		var sum, worst float64 = 0, 99
		last := int64(-1)
		for i, pic := range pics {
			img := ycbcr(pic, w, h)
			n, ok := cam.ReadCounter(img)
			if !ok {
				t.Fatalf("%s picture %d: frame counter unreadable", d.name, i)
			}
			if int64(n) <= last {
				t.Fatalf("%s picture %d shows frame %d after frame %d", d.name, i, n, last)
			}
			last = int64(n)
			ref := cam.AppendI420(nil, n, cam.ReadFlash(img))
			y := psnr(ref[:w*h], pic[:w*h])
			sum += y
			worst = min(worst, y)
		}
		mean := sum / float64(len(pics))
		t.Logf("%s: %d pictures, luma PSNR mean %.1f dB, worst %.1f dB", d.name, len(pics), mean, worst)
		if mean < 35 || worst < 32 {
			t.Errorf("%s: luma PSNR mean %.1f dB (want >= 35), worst %.1f dB (want >= 32)", d.name, mean, worst)
		}
	}
}
