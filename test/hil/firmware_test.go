package hil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/test/hil/vm"
)

// firmwareScript starts the appliance with its defaults (--camera auto,
// --mic auto, --speaker auto) next to a tone in the ALSA loopback, and
// waits for its first media statistics (logged every 10 s). Echo
// cancellation is off: under arm64 emulation the canceller starves the
// box (15 audio packets in 10 s with it on); the drivers VM measures it
// (hilecho).
const firmwareScript = `
hilmic -gen /tmp/tone.raw -freq 440 -amp 6000 -secs 60
aplay -q -D hw:Loopback,1,0 -f S16_LE -r 48000 -c 1 -t raw /tmp/tone.raw &
callbox run --http :8081 --data /tmp/callbox --mdns-name "" --size 640x480 --fps 15 --echo-cancel off > /results/callbox.log 2>&1 &
i=0
while ! grep -q "media stats" /results/callbox.log && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
grep -q "media stats" /results/callbox.log
`

// TestFirmwareInVM boots the real firmware binary (cgo, cross-built for
// arm64) on the emulated hardware: "auto" must find the V4L2 camera, the
// ALSA microphone and the ALSA speaker, media must flow, and the page must be reachable from
// the host through the forwarded port.
func TestFirmwareInVM(t *testing.T) {
	testenv.Short(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		testenv.Unavailable(t, "HIL VMs are built on linux/amd64 hosts (got %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	testenv.RequireRoot(t)
	const arch = "arm64"
	for _, tool := range vm.Tools(arch) {
		testenv.LookPath(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	m, err := vm.Start(ctx, vm.Options{
		Arch:    arch,
		WorkDir: t.TempDir(),
		Programs: []vm.Program{
			{Name: "callbox", Package: "./cmd/callbox", Cgo: true},
			{Name: "hilmic", Package: "./test/hil/cmd/hilmic", Cgo: true},
		},
		Script:  firmwareScript,
		HostFwd: []int{8081},
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
	logb, err := m.Fetch("callbox.log")
	if err != nil {
		t.Fatal(err)
	}
	log := string(logb)
	t.Logf("callbox.log:\n%s", log)
	if code != 0 {
		t.Fatalf("no media stats from the firmware (script exit %d)", code)
	}
	for _, want := range []string{`camera="V4L2 camera /dev/video0 YUYV 640x480`, `mic="ALSA microphone`, `msg=speaker part=speaker device="ALSA speaker`} {
		if !strings.Contains(log, want) {
			t.Errorf("auto did not choose the real device: %q missing", want)
		}
	}
	fps := regexp.MustCompile(`msg="media stats".*video_fps=([0-9.]+) .*audio_packets=([0-9]+)`).FindStringSubmatch(log)
	if fps == nil {
		t.Fatal("no media stats line")
	}
	v, _ := strconv.ParseFloat(fps[1], 64)
	a, _ := strconv.Atoi(fps[2])
	if v < 1 || a < 100 {
		t.Errorf("media not flowing from the real devices: video_fps=%v audio_packets=%d", v, a)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", m.HostPort(8081)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("page through hostfwd: %s, %d bytes", resp.Status, len(body))
	}
	t.Logf("page: %s, %d bytes from the guest's firmware", resp.Status, len(body))
}
