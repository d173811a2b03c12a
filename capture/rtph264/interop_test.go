package rtph264

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

// framemd5 decodes an H.264 byte stream with ffmpeg and returns the MD5 of
// each decoded picture.
func framemd5(t *testing.T, ffmpeg string, stream []byte) []string {
	t.Helper()
	cmd := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-xerror", "-f", "h264", "-i", "-", "-f", "framemd5", "-")
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v", err)
	}
	var sums []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		f := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(f[len(f)-1]))
	}
	return sums
}

// TestFFmpegSender receives RFC 6184 from ffmpeg's RTP muxer (FU-A, STAP-A,
// written by people other than us) over loopback UDP; the access units the
// depacketizer emits must decode to exactly the pictures of the same
// encode written as a plain byte stream.
func TestFFmpegSender(t *testing.T) {
	testenv.Short(t) // ffmpeg encodes, sends and (H.264) decodes: seconds under load
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	const frames = 10
	enc := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", fmt.Sprint(frames),
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-g", "5", "-bf", "0",
		"-x264-params", "sliced-threads=0:threads=1"}
	ref := exec.Command(ffmpeg, append(append([]string{"-hide_banner", "-v", "error"}, enc...), "-f", "h264", "-")...)
	refStream, err := ref.Output()
	if err != nil {
		t.Fatalf("ffmpeg reference: %v", err)
	}
	want := framemd5(t, ffmpeg, refStream)
	if len(want) != frames {
		t.Fatalf("reference decodes to %d frames", len(want))
	}

	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The RTP muxer takes SPS/PPS out of the stream (they go to SDP);
	// dump_extra puts them back in front of each keyframe.
	send := exec.CommandContext(ctx, ffmpeg, append(append([]string{"-hide_banner", "-v", "error"}, enc...),
		"-bsf:v", "dump_extra", "-f", "rtp",
		fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=600", conn.LocalAddr().(*net.UDPAddr).Port))...)
	var stderr bytes.Buffer
	send.Stderr = &stderr
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	d := NewDepacketizer()
	var stream []byte
	buf := make([]byte, 2048)
	for n := 0; n < frames; {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d access units: %v (ffmpeg: %s)", n, err, stderr.String())
		}
		au, ok, err := d.Push(buf[:k])
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if ok {
			stream = append(stream, au.Data...)
			n++
		}
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("ffmpeg sender: %v\n%s", err, stderr.String())
	}
	got := framemd5(t, ffmpeg, stream)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("decoded pictures differ:\n got %v\nwant %v", got, want)
	}
}

// TestFFmpegReceiver sends our RFC 6184 packets (STAP-A, FU-A at 500-byte
// packets) to ffmpeg's RTP demuxer through an SDP; every picture it decodes
// must be one of the pictures of the original byte stream (framemd5).
func TestFFmpegReceiver(t *testing.T) {
	testenv.Short(t)
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	aus := accessUnits(t)
	raw, err := os.ReadFile("testdata/gop5_320x240.h264")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range framemd5(t, ffmpeg, raw) {
		want[s] = true
	}
	if len(want) != 10 {
		t.Fatalf("reference has %d distinct pictures", len(want))
	}

	dir := t.TempDir()
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	sdp := filepath.Join(dir, "stream.sdp")
	if err := os.WriteFile(sdp, []byte(fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=callbox test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const frames = 12
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
	p, err := NewPacketizer(500, 0xCA11B0C5, 96)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	var werr error
	// Send the GOPs over and over until ffmpeg has its pictures; it shows
	// nothing before the first IDR it receives.
send:
	for i := 0; ; i++ {
		select {
		case werr = <-done:
			break send
		case <-time.After(20 * time.Millisecond):
		}
		b, err := p.Packetize(h264Frame(aus[i%len(aus)], at.Add(time.Duration(i)*40*time.Millisecond)))
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
	var got []string
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		got = append(got, strings.TrimSpace(f[len(f)-1]))
	}
	if len(got) != frames {
		t.Fatalf("ffmpeg output %d pictures:\n%s", len(got), stderr.String())
	}
	for i, g := range got {
		if !want[g] {
			t.Fatalf("picture %d (md5 %s) is not one of the original's", i, g)
		}
	}
}
