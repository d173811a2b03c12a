package rtpjpeg

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestFFmpegSender receives RFC 2435 from ffmpeg's RTP muxer (an
// implementation nobody here wrote) over loopback UDP and checks that every
// frame reassembles into an image that decodes pixel-identical to the JPEG
// ffmpeg's encoder makes of the same input.
func TestFFmpegSender(t *testing.T) {
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	const frames = 3
	for _, pix := range []string{"yuvj420p"} {
		t.Run(pix, func(t *testing.T) {
			dir := t.TempDir()
			src := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", fmt.Sprint(frames),
				"-c:v", "mjpeg", "-huffman", "default", "-q:v", "5", "-pix_fmt", pix}
			ref := exec.Command(ffmpeg, append(append([]string{"-hide_banner", "-v", "error"}, src...),
				filepath.Join(dir, "ref%d.jpg"))...)
			if out, err := ref.CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg reference: %v\n%s", err, out)
			}

			conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetReadBuffer(1 << 20)
			port := conn.LocalAddr().(*net.UDPAddr).Port
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			send := exec.CommandContext(ctx, ffmpeg, append(append([]string{"-hide_banner", "-v", "error"}, src...),
				"-f", "rtp", fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=1200", port))...)
			var stderr bytes.Buffer
			send.Stderr = &stderr
			if err := send.Start(); err != nil {
				t.Fatal(err)
			}

			d := NewDepacketizer()
			var got [][]byte
			buf := make([]byte, 2048)
			for len(got) < frames {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("after %d frames: %v (ffmpeg: %s)", len(got), err, stderr.String())
				}
				f, ok, err := d.Push(buf[:n])
				if err != nil {
					t.Fatalf("push: %v", err)
				}
				if ok {
					got = append(got, append([]byte{}, f.Data...))
				}
			}
			if err := send.Wait(); err != nil {
				t.Fatalf("ffmpeg sender: %v\n%s", err, stderr.String())
			}
			for i, data := range got {
				want, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("ref%d.jpg", i+1)))
				if err != nil {
					t.Fatal(err)
				}
				if err := samePixels(decode(t, want), decode(t, data)); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
		})
	}
}
