package hil

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/synth"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/test/hil/vm"
)

// TestEncoderInVM runs drivers/encoder against vicodec, the kernel's
// virtual stateful codec, in the amd64 VM (test/hil/cmd/hilenc says what
// each check does), and a UVC camera that encodes H.264 (v4l2loopback fed
// with access units) through drivers/camera's passthrough and
// media.ChooseVideo. The arm64 VM is left out to keep the suite short: the
// ioctl layouts of arm64 and armv7 are checked by drivers/encoder's
// TestABISizes under qemu-user.
func TestEncoderInVM(t *testing.T) {
	testenv.Short(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		testenv.Unavailable(t, "HIL VMs are built on linux/amd64 hosts (got %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	testenv.RequireRoot(t)
	for _, tool := range vm.Tools("amd64") {
		testenv.LookPath(t, tool)
	}
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	// A UVC camera that encodes H.264: v4l2loopback fed with access
	// units of the synthetic camera, encoded here by the software encoder.
	aus, cam := uvcStream(t)
	t0 := time.Now()
	m, err := vm.Start(ctx, vm.Options{
		Arch:    "amd64",
		WorkDir: t.TempDir(),
		Programs: []vm.Program{
			{Name: "hilenc", Package: "./test/hil/cmd/hilenc"},
			{Name: "hilfeed", Package: "./test/hil/cmd/hilfeed"},
			{Name: "hilcam", Package: "./test/hil/cmd/hilcam"},
		},
		Files:   map[string]string{"/aus.bin": aus},
		Script:  encoderScript,
		Timeout: 8 * time.Minute,
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	code, err := m.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log, err := m.Fetch("script.log")
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := m.Fetch("boot.log")
	t.Logf("prepare %v, build %v, boot %v, total %v\n--- boot.log\n%s--- script.log\n%s",
		m.Timing.Prepare.Round(time.Millisecond), m.Timing.Build.Round(time.Millisecond),
		m.Timing.Boot.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), boot, log)
	if code != 0 {
		t.Errorf("guest script exited %d", code)
	}
	for _, want := range []string{"PROBE", "GOP", "FORCE", "DECODE", "DRAIN", "RESTART", "VANISH"} {
		if !strings.Contains(string(log), "ENC "+want+" PASS") {
			t.Errorf("missing %q in the guest's results", "ENC "+want+" PASS")
		}
	}
	if !strings.Contains(string(log), "CAM H264 PASS") {
		t.Error(`missing "CAM H264 PASS" in the guest's results`)
	}
	// The camera's access units, as captured in the guest, decode here
	// and show the synthetic camera's pictures.
	stream, err := m.Fetch("uvc.h264")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-v", "error", "-f", "h264", "-i", "-",
		"-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
	cmd.Stdin = bytes.NewReader(stream)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg cannot decode the captured H.264: %v", err)
	}
	const w, h = 640, 480
	size := capture.I420Size(w, h)
	n := len(raw) / size
	// The capture starts anywhere in the feeder's 10-frame GOPs; what
	// follows the first IDR decodes: at least one whole GOP of 30 frames.
	if n < 10 {
		t.Fatalf("ffmpeg decoded %d pictures from the camera's stream", n)
	}
	worst := 99.0
	for i := range n {
		p := raw[i*size : (i+1)*size]
		img := &image.YCbCr{Y: p[:w*h], Cb: p[w*h : w*h+w*h/4], Cr: p[w*h+w*h/4:], YStride: w, CStride: w / 2,
			SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
		seq, ok := cam.ReadCounter(img)
		if !ok {
			t.Fatalf("picture %d of the camera's stream: counter unreadable", i)
		}
		ref := cam.AppendI420(nil, seq, false)
		var sum float64
		for j := range w * h {
			d := float64(ref[j]) - float64(p[j])
			sum += d * d
		}
		worst = math.Min(worst, 10*math.Log10(255*255/math.Max(sum/float64(w*h), 1e-9)))
	}
	t.Logf("UVC H.264 via v4l2loopback: %d pictures decoded, worst luma PSNR %.1f dB", n, worst)
	if worst < 35 {
		t.Errorf("the camera's pictures decode at %.1f dB", worst)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

const encoderScript = `for n in /sys/class/video4linux/*/name; do echo "$n: $(cat $n)"; done
hilenc; s=$?
hilfeed -dev /dev/video10 -h264 /aus.bin -fps 30 -t 60s > /tmp/feed.log 2>&1 &
FEED=$!
i=0; while ! grep -q streaming /tmp/feed.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
hilcam -dev /dev/video10 -n 30 -h264out /results/uvc.h264 || s=1
kill $FEED; wait $FEED
cat /tmp/feed.log
dmesg | grep -i -E "vicodec|m2m" | tail -10
exit $s
`

// uvcStream encodes 30 synthetic 640x480 pictures (GOP 10) and writes
// them as hilfeed's -h264 file: each access unit behind its length.
func uvcStream(t *testing.T) (string, *synth.Camera) {
	t.Helper()
	if !h264enc.SoftwareAvailable() {
		testenv.Unavailable(t, "no software H.264 encoder in this build (cgo)")
	}
	cam, err := synth.NewCamera(synth.CameraConfig{Width: 640, Height: 480})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h264enc.Config{Width: 640, Height: 480, GOP: 10, Bitrate: 1_500_000}
	eng, err := h264enc.NewSoftware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var out []byte
	for i := range 30 {
		au, err := eng.Encode(cam.AppendI420(nil, uint64(i), false), false)
		if err != nil {
			t.Fatal(err)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(au)))
		out = append(out, au...)
	}
	p := filepath.Join(t.TempDir(), "aus.bin")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, cam
}
