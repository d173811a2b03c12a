// Package hil holds callbox's hardware-in-the-loop tests: the real drivers
// (drivers/camera, drivers/mic, drivers/speaker with capture/echo,
// drivers/gpio) run inside throw-away VMs
// whose kernels provide real V4L2, ALSA and GPIO devices (see test/hil/vm),
// for amd64 and for arm64 with the cross-built cgo binaries.
package hil

import (
	"bytes"
	"context"
	"image/jpeg"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/test/hil/vm"
)

// script runs in the guest. Each program prints a PASS or FAIL line; the
// script's status is non-zero if any failed.
const script = `
fail=0
hilgpio -n 5 || fail=1
hilcam -dev /dev/video0 -want YUYV -n 30 -out /results/yuyv.jpg || fail=1
hilcam -replug || fail=1
hilfeed -dev /dev/video10 -fps 30 -t 60s > /tmp/feed.log 2>&1 &
FEED=$!
i=0; while ! grep -q streaming /tmp/feed.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
hilcam -dev /dev/video10 -want MJPG -n 30 -out /results/mjpeg.jpg || fail=1
kill $FEED; wait $FEED
cat /tmp/feed.log
hilmic -gen /tmp/tone.raw -freq 997 -amp 8000 -secs 10
aplay -q -D hw:Loopback,1,0 -f S16_LE -r 48000 -c 1 -t raw /tmp/tone.raw &
AP=$!
sleep 0.3
hilmic -device hw:0,0 -freq 997 -amp 8000 -secs 1 2>/tmp/portaudio.err || { cat /tmp/portaudio.err; fail=1; }
kill $AP; wait $AP
if [ "$(uname -m)" = x86_64 ]; then
  hilecho -speaker hw:0,1 -mic hw:0,0 2>/tmp/portaudio.err || { cat /tmp/portaudio.err; fail=1; }
fi
hilmic -replug -device hw:0,0 > /tmp/replug.log 2>/tmp/portaudio.err &
MIC=$!
i=0; while ! grep -qs "UNPLUG NOW" /tmp/replug.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
D=$(basename /sys/bus/platform/drivers/snd_aloop/snd_aloop*)
touch /tmp/unplugging
echo "$D" > /sys/bus/platform/drivers/snd_aloop/unbind
echo "$D" > /sys/bus/platform/drivers/snd_aloop/bind && touch /tmp/rebound
wait $MIC || fail=1
cat /tmp/replug.log
exit $fail
`

var programs = []vm.Program{
	{Name: "hilgpio", Package: "./test/hil/cmd/hilgpio"},
	{Name: "hilcam", Package: "./test/hil/cmd/hilcam"},
	{Name: "hilfeed", Package: "./test/hil/cmd/hilfeed"},
	{Name: "hilmic", Package: "./test/hil/cmd/hilmic", Cgo: true},
	// The speaker driver and the echo canceller on snd-aloop (issue 15's
	// acceptance: ERLE >= 25 dB, double talk within 3 dB).
	{Name: "hilecho", Package: "./test/hil/cmd/hilecho", Cgo: true},
}

func TestDriversInVM(t *testing.T) {
	testenv.Short(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		testenv.Unavailable(t, "HIL VMs are built on linux/amd64 hosts (got %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	testenv.RequireRoot(t)
	// One VM at a time: the machine has two cores and TCG uses one per VM.
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			for _, tool := range vm.Tools(arch) {
				testenv.LookPath(t, tool)
			}
			runDrivers(t, arch)
		})
	}
}

func runDrivers(t *testing.T, arch string) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	t0 := time.Now()
	m, err := vm.Start(ctx, vm.Options{
		Arch:     arch,
		WorkDir:  t.TempDir(),
		Programs: programs,
		Script:   script,
		Timeout:  8 * time.Minute,
		Logf:     t.Logf,
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
	t.Logf("%s: prepare %v, build %v, boot %v, total %v\n--- boot.log\n%s--- script.log\n%s",
		arch, m.Timing.Prepare.Round(time.Millisecond), m.Timing.Build.Round(time.Millisecond),
		m.Timing.Boot.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), boot, log)
	if code != 0 {
		t.Errorf("guest script exited %d", code)
	}
	wants := []string{"GPIO IN PASS", "GPIO GLITCH PASS", "GPIO OUT PASS", "CAM PASS /dev/video0 YUYV", "CAM REPLUG PASS", "CAM PASS /dev/video10 MJPG", "AUDIO PASS", "MIC REPLUG PASS"}
	if arch == "amd64" {
		// The echo canceller's acceptance (issue 15) runs in the amd64
		// guest only: under arm64 emulation the loopback's real-time
		// capture breaks too often on a shared host.
		wants = append(wants, "ECHO PASS")
	}
	for _, want := range wants {
		if !strings.Contains(string(log), want) {
			t.Errorf("missing %q in the guest's results", want)
		}
	}
	// The frames the driver captured, checked once more on the host.
	for _, f := range []string{"yuyv.jpg", "mjpeg.jpg"} {
		b, err := m.Fetch(f)
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s from the guest does not decode: %v", f, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
			t.Errorf("%s is %v, want 640x480", f, b)
		}
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
