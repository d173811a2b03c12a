package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/internal/testenv"
)

// callboxBin is the callbox binary, built once for all tests.
var (
	buildOnce sync.Once
	buildDir  string
	callbox   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildCallbox builds the callbox binary (once) and returns its path.
func buildCallbox(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "callbox-interop-")
		if buildErr != nil {
			return
		}
		callbox = filepath.Join(buildDir, "callbox")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goTool, "build", "-o", callbox, "github.com/callbox/callbox/cmd/callbox").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return callbox
}

// freePorts returns an even UDP port p with p..p+3 free on loopback: RTP
// and RTCP for video, then for audio.
func freePorts(t *testing.T) int {
	t.Helper()
	for range 100 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 != 0 || p > 65530 {
			continue
		}
		ok := true
		var held []*net.UDPConn
		for i := range 4 {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: p + i})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no four free consecutive UDP ports")
	return 0
}

// bound reports whether a UDP socket is bound to port p (the receiver, once
// it listens). It reads the kernel's socket tables rather than trying to
// bind the port, which for an instant would take it from the receiver.
func bound(p int) bool {
	suffix := fmt.Sprintf(":%04X", p)
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 1 && strings.HasSuffix(f[1], suffix) {
				return true
			}
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer that a child process's output goroutines
// and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// videoResult is what the test saw of ffmpeg's decoded video.
type videoResult struct {
	frames     int
	flash      []bool   // per decoded frame: shows the sync flash
	counters   []uint64 // the counter each decoded frame shows
	unreadable int      // frames whose counter could not be read
	minPSNR    float64  // worst frame, dB, all planes
	sumPSNR    float64
	worstFrame uint64
	err        error
}

// psnr compares a decoded 4:2:0 frame with the reference, over all planes.
func psnr(got, want *image.YCbCr) float64 {
	var se float64
	var n int
	plane := func(a []byte, as int, b []byte, bs int, w, h int) {
		for y := range h {
			ra, rb := a[y*as:y*as+w], b[y*bs:y*bs+w]
			for x := range w {
				d := float64(int(ra[x]) - int(rb[x]))
				se += d * d
			}
		}
		n += w * h
	}
	w, h := got.Rect.Dx(), got.Rect.Dy()
	plane(got.Y, got.YStride, want.Y, want.YStride, w, h)
	plane(got.Cb, got.CStride, want.Cb, want.CStride, (w+1)/2, (h+1)/2)
	plane(got.Cr, got.CStride, want.Cr, want.CStride, (w+1)/2, (h+1)/2)
	if se == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

// analyzeVideo reads raw yuvj420p frames from r until EOF. For each it
// reads the frame counter, rebuilds the frame the camera sent under that
// number and measures the PSNR between the two.
func analyzeVideo(r io.Reader, cam *synth.Camera, w, h int) videoResult {
	res := videoResult{minPSNR: math.Inf(1)}
	frameSize := w*h + 2*((w+1)/2)*((h+1)/2)
	// Reading and analysing run apart so a slow analysis does not stall
	// ffmpeg's output (and with it ffmpeg's reading of the sockets).
	const nbuf = 24
	free := make(chan []byte, nbuf)
	full := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, frameSize)
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		for {
			b := <-free
			if _, err := io.ReadFull(r, b); err != nil {
				if err == io.EOF {
					err = nil
				}
				readErr <- err
				return
			}
			full <- b
		}
	}()
	cw, ch := (w+1)/2, (h+1)/2
	var ref []byte
	for b := range full {
		got := &image.YCbCr{
			Y: b[:w*h], Cb: b[w*h : w*h+cw*ch], Cr: b[w*h+cw*ch:],
			YStride: w, CStride: cw, SubsampleRatio: image.YCbCrSubsampleRatio420,
			Rect: image.Rect(0, 0, w, h),
		}
		res.frames++
		res.flash = append(res.flash, cam.ReadFlash(got))
		n, ok := cam.ReadCounter(got)
		if !ok {
			res.unreadable++
			free <- b
			continue
		}
		res.counters = append(res.counters, n)
		ref = cam.AppendFrame(ref[:0], n, cam.ReadFlash(got))
		img, err := jpeg.Decode(bytes.NewReader(ref))
		if err != nil {
			res.err = fmt.Errorf("decode reference frame %d: %w", n, err)
			free <- b
			continue
		}
		p := psnr(got, img.(*image.YCbCr))
		res.sumPSNR += p
		if p < res.minPSNR {
			res.minPSNR, res.worstFrame = p, n
		}
		free <- b
	}
	if err := <-readErr; err != nil && res.err == nil {
		res.err = fmt.Errorf("read ffmpeg output: %w", err)
	}
	return res
}

var summaryRE = regexp.MustCompile(`(\w+)=([0-9.]+)`)

// parseSummary returns the key=value pairs of callbox send's summary line
// that starts with prefix.
func parseSummary(t *testing.T, out, prefix string) map[string]float64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		m := map[string]float64{}
		for _, kv := range summaryRE.FindAllStringSubmatch(line, -1) {
			v, err := strconv.ParseFloat(kv[2], 64)
			if err == nil {
				m[kv[1]] = v
			}
		}
		return m
	}
	t.Fatalf("no %q line in callbox send's output:\n%s", prefix, out)
	return nil
}

// receiver is an RTP client nobody here wrote, driven from its command line.
type receiver struct {
	name string
	// args returns the command line. The receiver reads sdp, writes one
	// raw picture per decoded frame (planar 4:2:0 Y, Cb, Cr, full range,
	// as decoded from the JPEG) to file descriptor 3 and the audio as
	// 8 kHz mono S16LE to audioPath.
	args func(sdp, audioPath string) []string
	env  []string
	// finish ends the receiver once the stream is over; nil when it ends by
	// itself.
	finish func(*os.Process) error
	// complaint reports whether a line of the receiver's log reports a
	// problem (packet loss, a decode error).
	complaint func(line string) bool
	// timestamps, when set, returns the presentation time in seconds of
	// every decoded video frame and of the first audio sample, on the
	// receiver's common timeline, so the test can check audio/video sync.
	timestamps func(dir string) (video []float64, audio0 float64, err error)
}

// runInterop starts r on a fresh SDP from callbox send --sdp-only, sends
// JPEG for duration from the synthetic sources, and checks what r decoded
// against what was sent. --codec jpeg: auto sends H.264 where an encoder
// is found (firmware's TestSendH264 covers that path).
func runInterop(t *testing.T, r receiver, width, height, fps int, duration time.Duration) {
	dir := t.TempDir()
	bin := buildCallbox(t)
	port := freePorts(t)
	sdp := filepath.Join(dir, "callbox.sdp")
	to := fmt.Sprintf("127.0.0.1:%d", port)
	if out, err := exec.Command(bin, "send", "--codec", "jpeg", "--to", to, "--sdp", sdp, "--sdp-only").CombinedOutput(); err != nil {
		t.Fatalf("callbox send --sdp-only: %v\n%s", err, out)
	}
	sdpText, err := os.ReadFile(sdp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SDP:\n%s", sdpText)

	// The receiver first, reading the SDP as any user would.
	audioPath := filepath.Join(dir, "audio.s16")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := r.args(sdp, audioPath)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), r.env...)
	var rlog syncBuffer
	cmd.Stdout = &rlog
	cmd.Stderr = &rlog
	cmd.WaitDelay = 10 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
	pw.Close()
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		pr.Close()
	})
	cam, err := synth.NewCamera(synth.CameraConfig{Width: width, Height: height, FPS: fps})
	if err != nil {
		t.Fatal(err)
	}
	videoDone := make(chan videoResult, 1)
	go func() { videoDone <- analyzeVideo(pr, cam, width, height) }()

	deadline := time.Now().Add(20 * time.Second)
	for !bound(port) || !bound(port+2) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not open UDP ports %d and %d:\n%s", r.name, port, port+2, rlog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	send := exec.CommandContext(ctx, bin, "send", "--codec", "jpeg", "--to", to, "--sdp", filepath.Join(dir, "again.sdp"),
		"--duration", duration.String(), "--size", fmt.Sprintf("%dx%d", width, height), "--fps", strconv.Itoa(fps))
	var sendErr bytes.Buffer
	send.Stderr = &sendErr
	out, err := send.Output()
	if err != nil {
		t.Fatalf("callbox send: %v\n%s%s", err, out, sendErr.String())
	}
	t.Logf("callbox send:\n%s", out)
	video := parseSummary(t, string(out), "callbox send: video")
	audio := parseSummary(t, string(out), "callbox send: audio")

	if r.finish != nil {
		time.Sleep(time.Second) // the last packets, through any jitter buffer
		if err := r.finish(cmd.Process); err != nil {
			t.Fatalf("stop %s: %v", r.name, err)
		}
	}
	var vr videoResult
	select {
	case vr = <-videoDone:
	case <-time.After(45 * time.Second):
		t.Fatalf("%s did not finish after the stream ended:\n%s", r.name, rlog.String())
	}
	werr := cmd.Wait()
	exited = true
	if werr != nil {
		t.Errorf("%s: %v", r.name, werr)
	}
	log := rlog.String()
	t.Logf("%s log:\n%s", r.name, log)
	for _, line := range strings.Split(log, "\n") {
		if r.complaint(line) {
			t.Errorf("%s complained: %s", r.name, line)
		}
	}
	if vr.err != nil {
		t.Fatal(vr.err)
	}

	// Frame count within 2% of what was sent.
	sent := video["frames"]
	if sent < float64(fps)*duration.Seconds()*0.9 {
		t.Errorf("callbox sent only %v frames in %v at %d fps", sent, duration, fps)
	}
	if d := math.Abs(float64(vr.frames) - sent); d > 0.02*sent {
		t.Errorf("%s decoded %d frames, callbox sent %v (%.1f%% off, at most 2%%)", r.name, vr.frames, sent, 100*d/sent)
	}
	// Every decoded picture shows a counter, counters increase, and the
	// picture matches the frame sent with that number.
	if vr.unreadable > 0 {
		t.Errorf("%d decoded frames without a readable counter", vr.unreadable)
	}
	for i := 1; i < len(vr.counters); i++ {
		if vr.counters[i] <= vr.counters[i-1] {
			t.Errorf("decoded frame %d shows counter %d after %d", i, vr.counters[i], vr.counters[i-1])
			break
		}
	}
	if len(vr.counters) > 0 {
		t.Logf("%s decoded %d frames (sent %v), counters %d..%d; PSNR vs sent frames: min %.1f dB (frame %d), mean %.1f dB",
			r.name, vr.frames, sent, vr.counters[0], vr.counters[len(vr.counters)-1], vr.minPSNR, vr.worstFrame, vr.sumPSNR/float64(len(vr.counters)))
	}
	if vr.minPSNR < 35 {
		t.Errorf("decoded frame %d differs from the sent one: PSNR %.1f dB, want >= 35", vr.worstFrame, vr.minPSNR)
	}

	pcm := checkAudio(t, audioPath, audio["chunks"])
	if r.timestamps != nil {
		checkSync(t, r, dir, vr, pcm, fps)
	}
}

// checkSync checks that the receiver presents each click within the frame
// that shows the sync flash: the sender tied both to the same wall-clock
// second, and its sender reports tell the receiver how the two streams'
// clocks relate.
func checkSync(t *testing.T, r receiver, dir string, vr videoResult, pcm []int16, fps int) {
	t.Helper()
	vts, a0, err := r.timestamps(dir)
	if err != nil {
		t.Fatalf("%s timestamps: %v", r.name, err)
	}
	if len(vts) != len(vr.flash) {
		t.Fatalf("%d video timestamps for %d decoded frames", len(vts), len(vr.flash))
	}
	var flashes []float64
	for i, f := range vr.flash {
		if f {
			flashes = append(flashes, vts[i])
		}
	}
	const rate = 8000
	clicks := synth.FindClicks(pcm, rate)
	if len(flashes) < 3 || len(clicks) < 3 {
		t.Fatalf("%d flashes and %d clicks: too few to check sync", len(flashes), len(clicks))
	}
	period := 1 / float64(fps)
	var offsets []string
	matched := 0
	for _, c := range clicks {
		at := a0 + float64(c)/rate
		// The flash frame nearest the click.
		best := flashes[0]
		for _, f := range flashes {
			if math.Abs(f-at) < math.Abs(best-at) {
				best = f
			}
		}
		d := at - best // 0 <= d < period when in sync
		if math.Abs(d) > 0.5 {
			// No flash frame for this second: the sender's camera dropped
			// it (a starved sender shows dropped_frames in its summary).
			offsets = append(offsets, "(no flash frame)")
			continue
		}
		matched++
		offsets = append(offsets, fmt.Sprintf("%+.1fms", 1000*d))
		if d < -0.010 || d > period+0.010 {
			t.Errorf("click at %.3fs, flash frame at %.3fs: audio is %+.1f ms off its frame", at, best, 1000*d)
		}
	}
	t.Logf("%s: click minus flash-frame start: %s (in sync: 0 to %.1f ms)", r.name, strings.Join(offsets, " "), 1000*period)
	if matched < 2 {
		t.Errorf("only %d clicks have a flash frame to compare with", matched)
	}
}

// framemd5Times returns the pts column of an ffmpeg framemd5 file in
// seconds (its time base is on a "#tb 0: 1/N" line).
func framemd5Times(path string) ([]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	den := 0.0
	var out []float64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "#tb 0: 1/"); ok {
			den, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return nil, fmt.Errorf("%s: time base %q", path, line)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 || den == 0 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		pts, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pts in %q", path, line)
		}
		out = append(out, float64(pts)/den)
	}
	return out, nil
}

// The ffmpeg test runs the product's default, 1280x720 at 30 fps: the size
// that must work, and about 50 packets per frame at the default 1200-byte
// limit, so fragmentation, restart markers and loopback buffering are all
// exercised. ffmpeg decodes it at a few ms per frame.
const (
	testWidth, testHeight = 1280, 720
	testFPS               = 30
)

func TestFFmpegDecodesSend(t *testing.T) {
	testenv.Short(t)
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	// ffmpeg ends the input this long after the last packet, finishes its
	// outputs and exits. (A SIGINT would not do: ffmpeg looks at it only
	// between packets, and a second one aborts the outputs.) It also
	// bounds the wait for the first packet, which comes right after ffmpeg
	// has opened its ports.
	const listenTimeout = 4
	var sdpPath string
	runInterop(t, receiver{
		name: "ffmpeg",
		args: func(sdp, audioPath string) []string {
			sdpPath = sdp
			return []string{ffmpeg, "-hide_banner", "-nostdin", "-nostats",
				"-loglevel", "level+warning",
				"-protocol_whitelist", "file,udp,rtp",
				// 4 MB of socket buffer: a frame arrives as a 60 KB burst,
				// and the kernel default (~200 KB) holds only a few while
				// ffmpeg is busy decoding.
				"-buffer_size", "4194304",
				"-listen_timeout", strconv.Itoa(listenTimeout),
				"-i", sdp,
				// Input timestamps on the outputs: the common timeline
				// ffmpeg builds from the sender reports.
				"-copyts",
				// One picture per decoded frame: no frame rate conversion,
				// and the input's 90 kHz time base so that no two frames
				// share an output timestamp.
				"-map", "0:v", "-fps_mode", "passthrough", "-enc_time_base:v", "-1", "-f", "rawvideo", "pipe:3",
				"-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "8000", "-y", audioPath,
				// The timestamps of every video and audio packet.
				"-map", "0:v", "-c", "copy", "-f", "framemd5", "-y", filepath.Join(filepath.Dir(audioPath), "video.framemd5"),
				"-map", "0:a", "-c", "copy", "-f", "framemd5", "-y", filepath.Join(filepath.Dir(audioPath), "audio.framemd5")}
		},
		timestamps: func(dir string) ([]float64, float64, error) {
			v, err := framemd5Times(filepath.Join(dir, "video.framemd5"))
			if err != nil {
				return nil, 0, err
			}
			a, err := framemd5Times(filepath.Join(dir, "audio.framemd5"))
			if err != nil || len(a) == 0 {
				return nil, 0, fmt.Errorf("audio timestamps: %v (%d)", err, len(a))
			}
			return v, a[0], nil
		},
		// With level+warning every line ffmpeg prints is a warning or worse
		// (RTP loss, JPEG decode errors, concealment), except the end of
		// the stream by listen_timeout.
		complaint: func(line string) bool {
			if strings.HasSuffix(line, sdpPath+": Connection timed out") {
				return false
			}
			return strings.Contains(line, "[warning]") || strings.Contains(line, "[error]") || strings.Contains(line, "[fatal]")
		},
	}, testWidth, testHeight, testFPS, 5*time.Second)
}

// GStreamer runs at 640x360: sdpdemux has no socket buffer setting, and
// the kernel's default (about 200 KB) holds only three 1280x720 frames, so
// on a loaded machine its UDP thread falls behind a 720p stream; a 360p
// frame is a quarter of that.
func TestGStreamerDecodesSend(t *testing.T) {
	testenv.Short(t)
	gst := testenv.LookPath(t, "gst-launch-1.0")
	runInterop(t, receiver{
		name: "gstreamer",
		args: func(sdp, audioPath string) []string {
			// sdpdemux (gst-plugins-bad) opens the file as is and links
			// each stream to the depayloader that accepts it.
			return append([]string{gst, "-q", "-e"}, strings.Fields(fmt.Sprintf(
				"filesrc location=%s ! sdpdemux name=d latency=200 "+
					"d. ! queue ! rtpjpegdepay ! jpegdec ! video/x-raw,format=I420 ! fdsink fd=3 sync=false "+
					"d. ! queue ! rtppcmudepay ! mulawdec ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! filesink location=%s sync=false",
				sdp, audioPath))...)
		},
		// Warnings and errors only: packet loss (rtpjitterbuffer,
		// depayloaders) and decode problems (jpegdec) show there.
		env: []string{"GST_DEBUG=2", "GST_DEBUG_NO_COLOR=1"},
		// -e: on SIGINT gst-launch sends end-of-stream and waits for the
		// pipeline to drain it, so the outputs are complete.
		finish: func(p *os.Process) error { return p.Signal(os.Interrupt) },
		complaint: func(line string) bool {
			// rtpbin's pads are linked downstream only once sdpdemux has
			// exposed them; GStreamer notes that at start-up, before any
			// packet, on every run.
			if strings.Contains(line, "could not send sticky events") {
				return false
			}
			return strings.Contains(line, "ERROR") || strings.Contains(line, "WARN")
		},
	}, 640, 360, testFPS, 5*time.Second)
}

// checkAudio checks ffmpeg's decoded PCMU: about as long as what was sent,
// the synthetic microphone's tone at its frequency and level, and its
// clicks one second apart.
func checkAudio(t *testing.T, path string, chunksSent float64) []int16 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	rd := bufio.NewReader(bytes.NewReader(raw))
	for i := range pcm {
		lo, _ := rd.ReadByte()
		hi, _ := rd.ReadByte()
		pcm[i] = int16(uint16(lo) | uint16(hi)<<8)
	}
	const rate = 8000
	got := time.Duration(len(pcm)) * time.Second / rate
	want := time.Duration(chunksSent) * 20 * time.Millisecond
	if d := got - want; d < -want/50 || d > want/50 {
		t.Errorf("decoded %v of audio, sent %v", got, want)
	}
	f := synth.ToneFrequency(pcm, rate)
	amp := synth.Goertzel(pcm, rate, synth.DefaultToneHz)
	t.Logf("audio: %v decoded, tone %.2f Hz at %.3f of full scale", got, f, amp)
	if math.Abs(f-synth.DefaultToneHz) > 5 {
		t.Errorf("decoded tone is %.2f Hz, want %d", f, synth.DefaultToneHz)
	}
	if math.Abs(amp-synth.DefaultLevel) > 0.05 {
		t.Errorf("decoded tone level %.3f, want %.2f", amp, synth.DefaultLevel)
	}
	clicks := synth.FindClicks(pcm, rate)
	if len(clicks) < int(got.Seconds())-1 {
		t.Errorf("%d clicks in %v of audio, want one a second", len(clicks), got)
	}
	for i := 1; i < len(clicks); i++ {
		if d := clicks[i] - clicks[i-1]; d < rate-8 || d > rate+8 {
			t.Errorf("clicks %d and %d are %d samples apart, want %d", i-1, i, d, rate)
		}
	}
	return pcm
}
