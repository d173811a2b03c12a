package rtsp

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestFFmpegReads: ffmpeg, a client nobody here wrote, plays the stream
// over TCP and over UDP with the token as the password (Digest: ffmpeg
// picks it when offered) and decodes 150 frames; without it, 401.
func TestFFmpegReads(t *testing.T) {
	testenv.Short(t)
	ff := testenv.LookPath(t, "ffmpeg")
	b := startBox(t, boxOptions{udp: true})
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			start := time.Now()
			out, err := runFFmpeg(ff, transport, b.urlWith("nvr", testToken))
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			n := lastFrameCount(out)
			t.Logf("ffmpeg %s: %d frames decoded in %v", transport, n, time.Since(start).Round(time.Millisecond))
			if n < 150 {
				t.Fatalf("ffmpeg decoded %d frames, want 150\n%s", n, out)
			}
			if !strings.Contains(out, "pcm_mulaw") || !strings.Contains(out, "mjpeg") {
				t.Fatalf("ffmpeg did not see mjpeg video and PCMU audio:\n%s", out)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		out, err := runFFmpeg(ff, "tcp", b.url)
		if err == nil || !strings.Contains(out, "401") {
			t.Fatalf("ffmpeg without a token: err %v, want a 401\n%s", err, out)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		out, err := runFFmpeg(ff, "tcp", b.urlWith("nvr", "wrong"))
		if err == nil || !strings.Contains(out, "401") {
			t.Fatalf("ffmpeg with a wrong token: err %v, want a 401\n%s", err, out)
		}
	})
}

func runFFmpeg(ff, transport, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ff, "-hide_banner", "-nostdin", "-rtsp_transport", transport,
		"-i", url, "-map", "0", "-frames:v", "150", "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var frameRE = regexp.MustCompile(`frame=\s*(\d+)`)

func lastFrameCount(out string) int {
	m := frameRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestGStreamerReads: GStreamer's rtspsrc plays the stream over TCP and
// UDP with the token (any user name) and jpegdec decodes 150 frames;
// without the token rtspsrc reports an authorization failure.
func TestGStreamerReads(t *testing.T) {
	testenv.Short(t)
	gst := testenv.LookPath(t, "gst-launch-1.0")
	b := startBox(t, boxOptions{udp: true})
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			start := time.Now()
			out, err := runGst(gst, transport, b.url, "frigate", testToken)
			if err != nil {
				t.Fatalf("gst-launch: %v\n%s", err, out)
			}
			if !strings.Contains(out, "Got EOS") {
				t.Fatalf("gst-launch ended without EOS after 150 frames:\n%s", out)
			}
			t.Logf("GStreamer %s: 150 frames decoded in %v", transport, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("no token", func(t *testing.T) {
		out, err := runGst(gst, "tcp", b.url, "", "")
		if err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
			t.Fatalf("gst-launch without a token: err %v, want Unauthorized\n%s", err, out)
		}
	})
}

func runGst(gst, transport, url, user, pass string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-e", "rtspsrc", "location=" + url, "protocols=" + transport, "latency=0", "name=s"}
	if user != "" {
		args = append(args, "user-id="+user, "user-pw="+pass)
	}
	args = append(args, "s.", "!", "rtpjpegdepay", "!", "jpegdec", "!", "fakesink", "num-buffers=150")
	cmd := exec.CommandContext(ctx, gst, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
