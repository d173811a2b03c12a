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

// TestEncoderInVM runs drivers/encoder against vicodec, the kernel's
// virtual stateful codec, in the amd64 VM (test/hil/cmd/hilenc says what
// each check does). The arm64 VM is left out to keep the suite short: the
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
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	t0 := time.Now()
	m, err := vm.Start(ctx, vm.Options{
		Arch:     "amd64",
		WorkDir:  t.TempDir(),
		Programs: []vm.Program{{Name: "hilenc", Package: "./test/hil/cmd/hilenc"}},
		Script:   "for n in /sys/class/video4linux/*/name; do echo \"$n: $(cat $n)\"; done; hilenc; s=$?; dmesg | grep -i -E \"vicodec|m2m|video\" | tail -20; exit $s",
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
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
