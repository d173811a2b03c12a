package image

import (
	"strings"
	"testing"
	"time"
)

// guestWatchdog arms the watchdog as the box does (S98watchdog with the
// image's watchdog.conf and health check), shows that a healthy box is left
// alone for longer than the hardware timeout, then hangs something ($HANG)
// and waits to be reset. The guest never prints the reset: qemu runs with
// -no-reboot, so the reset ends qemu, and the host sees that.
const guestWatchdog = `
wait_for 90 page && ok page || fail page "no page"
[ -c /dev/watchdog ] && ok watchdog-device || fail watchdog-device "no /dev/watchdog"
/etc/init.d/S98watchdog start | grep -q OK && ok watchdog-started || fail watchdog-started "S98watchdog start failed"
# Longer than the 15 s hardware timeout: a petted watchdog leaves a
# healthy box running.
sleep 20
page && ok healthy-box-runs || fail healthy-box-runs "no page"
case "$HANG" in
callbox) kill -STOP "$(pid)" ;;
system) kill -STOP "$(cat /var/run/watchdog.pid)" ;;
esac
echo "HUNG $HANG at $(cut -d' ' -f1 /proc/uptime)"
sleep 240
echo "CHECK reset FAIL still running 240 s after the hang"
`

// TestWatchdogResetsHungBox: with Debian's watchdog daemon (the package
// Buildroot builds, same version) on QEMU's i6300esb, a callbox that stops
// answering (SIGSTOP: it keeps its socket, accepts connections and never
// replies, which its supervisor cannot see) gets the box reset by the health
// check, and a system where nothing pets the watchdog any more (the daemon
// itself stopped) gets reset by the hardware.
func TestWatchdogResetsHungBox(t *testing.T) {
	t.Parallel() // see vmParallel
	for _, hang := range []string{"callbox", "system"} {
		t.Run(hang, func(t *testing.T) {
			t.Parallel()
			g := startGuest(t, guestOptions{
				selftest: "HANG=" + hang + "\n" + guestWatchdog,
				modules:  []string{"i6300esb"},
				devices:  []string{"i6300esb"},
				// Buildroot installs the daemon as /sbin/watchdog.
				debs: mergeMaps(libcDebs, map[string]string{"/sbin/watchdog": "watchdog:usr/sbin/watchdog"}),
				// Two failed checks instead of twelve keep the test short.
				defaults: "HEALTH_FAILURES=2\n",
			})
			log := g.waitFor(t, "HUNG "+hang, 200*time.Second)
			hung := time.Now()
			checkResults(t, log, []string{"page", "watchdog-device", "watchdog-started", "healthy-box-runs"})
			select {
			case <-g.done:
				// With -no-reboot a guest reset ends qemu with status 0;
				// timeout(1) ending it would not.
				if g.err != nil {
					t.Fatalf("qemu ended with %v, not by a guest reset; serial:\n%s", g.err, g.log())
				}
				t.Logf("box reset %v after the hang; the console after it:\n%s", time.Since(hung).Round(100*time.Millisecond), g.log()[len(log):])
			case <-time.After(150 * time.Second):
				t.Fatalf("the box was not reset 150 s after the hang; serial:\n%s", g.log())
			}
			if after := g.log()[len(log):]; strings.Contains(after, "CHECK reset FAIL") {
				t.Errorf("guest: %s", after)
			}
		})
	}
}
