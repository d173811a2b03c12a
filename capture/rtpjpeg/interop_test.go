package rtpjpeg

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestFFmpegSender receives RFC 2435 from ffmpeg's RTP muxer (an
// implementation nobody here wrote) over loopback UDP and checks that every
// frame reassembles into an image that decodes pixel-identical to the JPEG
// ffmpeg's encoder makes of the same input.
func TestFFmpegSender(t *testing.T) {
	testenv.Short(t) // ffmpeg encodes, sends and (H.264) decodes: seconds under load
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

// TestFFmpegReceiver sends our RFC 2435 packets to ffmpeg's RTP demuxer
// (through an SDP, as `callbox send` does) for every type, restart markers
// included: each picture ffmpeg reassembles and decodes must be identical
// (framemd5) to ffmpeg's decode of the original JPEG file.
func TestFFmpegReceiver(t *testing.T) {
	testenv.Short(t) // about 4 s: ffmpeg's probing per stream
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	pic := testPicture(160, 112, 11)
	cases := []struct {
		name string
		data []byte
		size int
	}{
		{"type0-422", encodeTestJPEG(pic, encOpts{h: 2, v: 1}), 1200},
		{"type1-420", goJPEG(t, 160, 112, 85, 3), 1200},
		{"type64-422-dri", encodeTestJPEG(pic, encOpts{h: 2, v: 1, dri: 3}), 400},
		{"type65-420-dri-noDHT", encodeTestJPEG(pic, encOpts{h: 2, v: 2, dri: 2, noDHT: true}), 1200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			orig := filepath.Join(dir, "orig.jpg")
			if c.name == "type65-420-dri-noDHT" {
				// ffmpeg needs the tables in the file to decode the
				// reference; the stream carries none either way.
				if err := os.WriteFile(orig, encodeTestJPEG(pic, encOpts{h: 2, v: 2, dri: 2}), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(orig, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			want := ffmpegMD5(t, ffmpeg, "-i", orig)
			if len(want) != 1 {
				t.Fatalf("reference: %v", want)
			}

			// A free UDP port for ffmpeg: bind, note, release.
			probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			port := probe.LocalAddr().(*net.UDPAddr).Port
			probe.Close()
			sdp := filepath.Join(dir, "stream.sdp")
			if err := os.WriteFile(sdp, []byte(fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=callbox test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video %d RTP/AVP 26\r\n", port)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const frames = 3
			recv := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-v", "error", "-protocol_whitelist", "file,udp,rtp",
				"-i", sdp, "-frames:v", fmt.Sprint(frames), "-f", "framemd5", "-")
			var out, stderr bytes.Buffer
			recv.Stdout, recv.Stderr = &out, &stderr
			if err := recv.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- recv.Wait() }()

			conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			p, err := NewPacketizer(c.size, 0xCA11B0C5, 26)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			// Send until ffmpeg has its frames; the first ones may arrive
			// before it listens.
			var werr error
		send:
			for i := 0; ; i++ {
				select {
				case werr = <-done:
					break send
				case <-time.After(40 * time.Millisecond):
				}
				b, err := p.Packetize(frame(c.data, at.Add(time.Duration(i)*40*time.Millisecond)))
				if err != nil {
					t.Fatal(err)
				}
				for _, pkt := range b.Packets {
					_, _ = conn.Write(pkt) // ECONNREFUSED until ffmpeg listens
				}
			}
			if werr != nil {
				t.Fatalf("ffmpeg: %v\n%s", werr, stderr.String())
			}
			got := md5Lines(out.String())
			if len(got) != frames {
				t.Fatalf("ffmpeg output %d frames:\n%s\n%s", len(got), out.String(), stderr.String())
			}
			for i, g := range got {
				if g != want[0] {
					t.Fatalf("frame %d: md5 %s, original %s", i, g, want[0])
				}
			}
		})
	}
}

func ffmpegMD5(t *testing.T, ffmpeg string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(ffmpeg, append(append([]string{"-hide_banner", "-v", "error"}, args...), "-f", "framemd5", "-")...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v", args, err)
	}
	return md5Lines(string(out))
}

// md5Lines returns the hash column of framemd5 output.
func md5Lines(s string) []string {
	var sums []string
	for _, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(f[len(f)-1]))
	}
	return sums
}
