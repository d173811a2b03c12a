package firmware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/media"
	"github.com/pion/sdp/v3"
)

// listenPair binds an even UDP port and the port two above it on loopback:
// the receiving end of callbox send.
func listenPair(t *testing.T) (video, audio *net.UDPConn) {
	t.Helper()
	for range 100 {
		v, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := v.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p > 65530 {
			v.Close()
			continue
		}
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 2})
		if err != nil {
			v.Close()
			continue
		}
		t.Cleanup(func() { v.Close(); a.Close() })
		v.SetReadBuffer(4 << 20)
		a.SetReadBuffer(1 << 20)
		return v, a
	}
	t.Fatal("no free even UDP port with a free port two above")
	return nil, nil
}

type received struct {
	frames, chunks, packets int
	counters                []uint64
	maxPacket               int
	noCaptureTime           int
	latencies               []time.Duration // arrival - abs-capture-time
	lost                    uint64
	err                     error
}

// receiveVideo depacketizes RTP/JPEG from c until it is closed.
func receiveVideo(c *net.UDPConn, cam *synth.Camera, out chan<- received) {
	var r received
	var frames [][]byte
	d := rtpjpeg.NewDepacketizer()
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		r.packets++
		r.maxPacket = max(r.maxPacket, n)
		f, ok, err := d.Push(buf[:n])
		if err != nil && r.err == nil {
			r.err = err
		}
		if !ok {
			continue
		}
		r.frames++
		if f.CaptureTime.IsZero() {
			r.noCaptureTime++
		} else {
			r.latencies = append(r.latencies, time.Since(f.CaptureTime))
		}
		// Decoding waits until the end: this loop must keep up with the
		// socket, or the kernel drops datagrams on a slow machine.
		frames = append(frames, bytes.Clone(f.Data))
	}
	r.lost = d.Stats().LostFrames
	for i, f := range frames {
		img, err := jpeg.Decode(bytes.NewReader(f))
		if err != nil {
			r.err = fmt.Errorf("frame %d does not decode: %w", i, err)
			continue
		}
		if v, ok := cam.ReadCounter(img); ok {
			r.counters = append(r.counters, v)
		}
	}
	out <- r
}

// receiveAudio depacketizes PCMU from c until it is closed.
func receiveAudio(c *net.UDPConn, out chan<- received) {
	var r received
	d := pcmu.NewDepacketizer()
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		r.packets++
		if at, err := rtpext.AbsCaptureTime(buf[:n]); err != nil {
			r.noCaptureTime++
		} else {
			r.latencies = append(r.latencies, time.Since(at))
		}
		ch, ok, err := d.Push(buf[:n])
		if err != nil && r.err == nil {
			r.err = err
		}
		if ok && len(ch.Samples) == pcmu.SamplesPerPacket {
			r.chunks++
		}
	}
	out <- r
}

func summaryValue(t *testing.T, out, kind, key string) int {
	t.Helper()
	m := regexp.MustCompile(`callbox send: ` + kind + ` .*\b` + key + `=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s %s= in the summary:\n%s", kind, key, out)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// callbox send over loopback, received by the project's own
// depacketizers: every frame and chunk arrives whole, within the packet
// size, stamped with its capture time, and the summary counts what went out.
func TestSendLoopback(t *testing.T) {
	vc, ac := listenPair(t)
	port := vc.LocalAddr().(*net.UDPAddr).Port
	cam, err := synth.NewCamera(synth.CameraConfig{Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	vres, ares := make(chan received, 1), make(chan received, 1)
	go receiveVideo(vc, cam, vres)
	go receiveAudio(ac, ares)

	dir := t.TempDir()
	sdpPath := filepath.Join(dir, "s.sdp")
	cfg := sendConfig{to: fmt.Sprintf("127.0.0.1:%d", port), sdpPath: sdpPath, duration: time.Second}
	cfg.opts = media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: 320, Height: 240, FPS: 25}, PacketSize: 500}
	cfg.h264 = media.H264Config{Codec: "jpeg"} // this test reads RTP/JPEG
	var out bytes.Buffer
	if err := runSend(context.Background(), cfg, &out, quietLog); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the last datagrams
	vc.Close()
	ac.Close()
	v, a := <-vres, <-ares
	s := out.String()
	t.Logf("%s", s)

	if v.err != nil || a.err != nil {
		t.Fatalf("receive errors: video %v, audio %v", v.err, a.err)
	}
	// What was sent must arrive, all of it. How much is sent in the second
	// depends on how fast the sources start: under qemu-user
	// (scripts/cross.sh) on a busy machine a tenth to a third of a second
	// goes by first (38 of 50 audio chunks seen), so only half is demanded.
	if sent := summaryValue(t, s, "video", "frames"); v.frames != sent || sent < 12 {
		t.Errorf("received %d frames, sent %d (1 s at 25 fps)", v.frames, sent)
	}
	if sent := summaryValue(t, s, "video", "packets"); v.packets != sent {
		t.Errorf("received %d video packets, sent %d", v.packets, sent)
	}
	if sent := summaryValue(t, s, "audio", "chunks"); a.chunks != sent || sent < 25 {
		t.Errorf("received %d audio chunks, sent %d (1 s of 20 ms)", a.chunks, sent)
	}
	if v.maxPacket > 500 {
		t.Errorf("a %d-byte packet with --packet-size 500", v.maxPacket)
	}
	if v.noCaptureTime > 0 || a.noCaptureTime > 0 {
		t.Errorf("%d frames and %d audio packets without abs-capture-time", v.noCaptureTime, a.noCaptureTime)
	}
	// Capture to arrival on one machine: the frame's slot time to its last
	// packet; an audio chunk's first sample to its packet, so at least the
	// chunk's 20 ms.
	for _, k := range []struct {
		name     string
		lat      []time.Duration
		min, max time.Duration
	}{
		{"video", v.latencies, 0, 500 * time.Millisecond},
		{"audio", a.latencies, capture.ChunkDuration, 500 * time.Millisecond},
	} {
		if len(k.lat) == 0 {
			t.Errorf("no %s latencies", k.name)
			continue
		}
		sorted := slices.Clone(k.lat)
		slices.Sort(sorted)
		med, worst := sorted[len(sorted)/2], sorted[len(sorted)-1]
		t.Logf("%s capture to arrival: median %v, max %v", k.name, med, worst)
		if sorted[0] < k.min || med > k.max {
			t.Errorf("%s capture to arrival: min %v, median %v; want >= %v, median <= %v", k.name, sorted[0], med, k.min, k.max)
		}
	}
	if len(v.counters) != v.frames {
		t.Errorf("%d of %d frames show a readable counter", len(v.counters), v.frames)
	}
	// Counters increase by one, except where the camera dropped frames
	// because the sender fell behind (a loaded machine): those it reports.
	skipped := 0
	for i := 1; i < len(v.counters); i++ {
		if v.counters[i] <= v.counters[i-1] {
			t.Errorf("frame counters go from %d to %d", v.counters[i-1], v.counters[i])
		}
		skipped += int(v.counters[i]-v.counters[i-1]) - 1
	}
	if dropped := summaryValue(t, s, "video", "dropped_frames"); skipped != dropped {
		t.Errorf("frame counters skip %d frames, the sender reports %d dropped", skipped, dropped)
	}

	text, err := os.ReadFile(sdpPath)
	if err != nil {
		t.Fatal(err)
	}
	var d sdp.SessionDescription
	if err := d.Unmarshal(text); err != nil {
		t.Fatal(err)
	}
	if len(d.MediaDescriptions) != 2 || d.MediaDescriptions[0].MediaName.Port.Value != port || d.MediaDescriptions[1].MediaName.Port.Value != port+2 {
		t.Errorf("SDP does not name ports %d and %d:\n%s", port, port+2, text)
	}
}

// --sdp-only writes the file and sends nothing.
func TestSendSDPOnly(t *testing.T) {
	vc, _ := listenPair(t)
	port := vc.LocalAddr().(*net.UDPAddr).Port
	path := filepath.Join(t.TempDir(), "s.sdp")
	cfg := sendConfig{to: fmt.Sprintf("127.0.0.1:%d", port), sdpPath: path, sdpOnly: true}
	cfg.opts = media.Config{Camera: "auto", Mic: "auto", Video: media.VideoConfig{Width: 1280, Height: 720, FPS: 30}, PacketSize: 1200}
	var out bytes.Buffer
	if err := runSend(context.Background(), cfg, &out, quietLog); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	vc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := vc.Read(make([]byte, 2000)); err == nil {
		t.Errorf("--sdp-only sent a %d-byte datagram", n)
	}
}

func TestSendErrors(t *testing.T) {
	good := media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: 320, Height: 240, FPS: 25}, PacketSize: 1200}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  sendConfig
	}{
		{"no --to", sendConfig{opts: good}},
		{"odd port", sendConfig{opts: good, to: "127.0.0.1:5005"}},
		{"no port", sendConfig{opts: good, to: "127.0.0.1"}},
		{"port too high", sendConfig{opts: good, to: "127.0.0.1:65534"}},
		{"no host", sendConfig{opts: good, to: ":5004"}},
		{"sdp-only without sdp", sendConfig{opts: good, to: "127.0.0.1:5004", sdpOnly: true}},
		{"unwritable sdp", sendConfig{opts: good, to: "127.0.0.1:5004", sdpPath: filepath.Join(dir, "no", "such", "dir", "s.sdp")}},
		{"unknown camera", sendConfig{opts: media.Config{Camera: "/dev/video9", Mic: "synthetic", Video: media.VideoConfig{Width: 320, Height: 240, FPS: 25}, PacketSize: 1200}, to: "127.0.0.1:5004"}},
		{"bad size", sendConfig{opts: media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: 100, Height: 100, FPS: 25}, PacketSize: 1200}, to: "127.0.0.1:5004"}},
		{"tiny packets", sendConfig{opts: media.Config{Camera: "synthetic", Mic: "synthetic", Video: media.VideoConfig{Width: 320, Height: 240, FPS: 25}, PacketSize: 64}, to: "127.0.0.1:5004"}},
	} {
		if tc.cfg.h264.Codec == "" {
			tc.cfg.h264.Codec = "jpeg" // RFC 2435's limits (tiny packets)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := runSend(ctx, tc.cfg, &bytes.Buffer{}, quietLog)
		cancel()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if tc.name == "unknown camera" && !errors.Is(err, capture.ErrDeviceGone) {
			t.Errorf("%s: %v, want capture.ErrDeviceGone", tc.name, err)
		}
	}
	if code := cmdSend([]string{"--no-such-flag"}); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code := cmdSend([]string{"--to", "127.0.0.1:5004", "stray"}); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
	if code := cmdSend([]string{"--to", "127.0.0.1:5005"}); code != 1 {
		t.Errorf("odd port: exit %d, want 1", code)
	}
}
