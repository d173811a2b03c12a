package hil

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/test/hil/vm"
)

// boardScript wires the firmware's generic board profile to the gpio-sim
// chip (buttons idle high: pulled up, as real buttons to ground are), runs
// the appliance (small, slow synthetic media: the TCG guest has one
// emulated CPU, and a busy one delays the LED and the sampler alike), and
// lets hilboard press buttons and watch the LED line.
const boardScript = `
S=$HIL_GPIOSIM
echo pull-up > $S/sim_gpio0/pull
echo pull-up > $S/sim_gpio1/pull
printf '[board]\nprofile = "generic"\nchip = "hil-bank0"\nbutton_a = 0\nbutton_b = 1\nled = 2\nbutton_bias = "none"\n' > /tmp/callbox.toml
callbox run --config /tmp/callbox.toml --http :8081 --data /tmp/callbox --mdns-name "" \
  --camera synthetic --mic synthetic --size 320x240 --fps 5 --relay "" > /results/callbox.log 2>&1 &
hilboard -url http://127.0.0.1:8081
`

// TestBoardInVM (board issue 6) runs the real firmware's board on real
// GPIO character devices: gpio-sim presses trigger the actions (mute,
// pairing, factory reset) and the LED line shows each state's pattern with
// the right timing.
func TestBoardInVM(t *testing.T) {
	testenv.Short(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		testenv.Unavailable(t, "HIL VMs are built on linux/amd64 hosts (got %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	testenv.RequireRoot(t)
	const arch = "amd64"
	for _, tool := range vm.Tools(arch) {
		testenv.LookPath(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	m, err := vm.Start(ctx, vm.Options{
		Arch:    arch,
		WorkDir: t.TempDir(),
		Programs: []vm.Program{
			{Name: "callbox", Package: "./cmd/callbox"},
			{Name: "hilboard", Package: "./test/hil/cmd/hilboard"},
		},
		GPIOLines: []string{"button-a", "button-b", "led"},
		Script:    boardScript,
		Timeout:   8 * time.Minute,
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	code, err := m.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := m.Fetch("script.log")
	cblog, _ := m.Fetch("callbox.log")
	t.Logf("--- script.log\n%s--- callbox.log\n%s", log, cblog)
	if code != 0 {
		t.Errorf("guest script exited %d", code)
	}
	for _, want := range []string{"BOARD LED READY PASS", "BOARD LED MUTED PASS", "BOARD LED PAIRING PASS", "BOARD PAIR PASS", "BOARD LED RESET PASS", "BOARD RESET PASS"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("missing %q in the guest's results", want)
		}
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
