package image

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// The boot test runs the arm64 firmware with the image's own boot-time
// pieces in qemu-system-aarch64 (TCG): the overlay (S00callbox-data,
// S99callbox, the health check), post-build.sh's fstab, and an SD card
// written by post-image.sh (boot FAT, root, data) attached as the guest's
// disk. The kernel is Debian's arm64 kernel and the userland BusyBox, in an
// initramfs standing in for Buildroot's root file system; a full Buildroot
// build needs the internet and an hour (make image BOARD=qemu).

// guestModules are the Debian kernel modules the guest needs: the virtio
// disk and network card, and the file systems of the card's partitions.
var guestModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "ext4", "vfat", "nls_cp437", "nls_ascii"}

// bootChecks are the checks the guest script reports, in order.
var bootChecks = []string{
	"dhcp-wired", "data-mounted", "import-config", "import-wifi-crlf", "import-wifi-mode",
	"data-grown", "page-local", "runs-imported-config", "runs-as-callbox", "data-private", "health-ok", "respawn", "restart", "stop",
	"health-stopped", "health-counts-failures", "data-repair", "data-recreate", "keep-local-edits", "start-again", "log-to-syslog",
}

// guestInit is PID 1 until it hands over to BusyBox init, which, as on the
// box, runs the boot script from /etc/inittab and reaps orphaned processes.
const guestInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
exec /bin/busybox init
`

const guestInittab = `::sysinit:/bin/sh /boot-test.sh
`

// guestBoot brings up what Buildroot's inittab and rcS would (mounts,
// modules, network), then runs the image's init scripts in their boot order
// and the checks.
const guestBoot = `export PATH=/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
while read -r m; do insmod "$m" || echo "MODLOAD FAIL $m"; done </etc/modload
ip link set lo up
# As Buildroot's S01syslogd: callbox's output goes to syslog.
syslogd
i=0; while [ ! -b /dev/vda4 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
/etc/init.d/S00callbox-data start
/etc/init.d/S01callbox-grow start
/etc/init.d/S41callbox-net start
/etc/init.d/S99callbox start
sh /selftest.sh 2>&1
echo "SELFTEST DONE"
`

// guestSelftestLib is the start of every guest's /selftest.sh: each check
// prints "CHECK <name> OK" or "CHECK <name> FAIL <why>".
const guestSelftestLib = `
ok() { echo "CHECK $1 OK"; }
fail() { echo "CHECK $1 FAIL $2"; }
page() { /usr/local/bin/wget -q -T 3 -O /dev/null http://127.0.0.1:8080/; }
# wait_for SECONDS CMD...: true once CMD succeeds.
wait_for() { n=$(($1 * 5)); shift; while ! "$@"; do [ $n -le 0 ] && return 1; n=$((n-1)); sleep 0.2; done; }
pid() { cat /run/callbox.pid 2>/dev/null; }
new_pid() { np=$(pid); [ -n "$np" ] && [ "$np" != "$1" ] && kill -0 "$np" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }
`

// guestSelftest is TestBootQEMU's: the data partition, the import, and
// the supervisor and health check of a running box.
const guestSelftest = `CR=$(printf '\r')
lease() { ip -4 addr show dev eth0 | grep -q 'inet 10\.0\.2\.15/24'; }
wait_for 30 lease && ok dhcp-wired || fail dhcp-wired "$(ip -4 addr show dev eth0)"

if mountpoint -q /data && grep -q ' /data ext4 ' /proc/mounts; then ok data-mounted; else fail data-mounted "$(cat /proc/mounts)"; fi
# The card is 64 MiB bigger than the image: S01callbox-grow grew the data
# partition (table, kernel, file system) while mounted.
sz=$(cat /sys/class/block/vda4/size); kb=$(df -k /data | awk 'NR == 2 { print $2 }')
if [ "$sz" -ge 262144 ] && [ "$kb" -gt 110000 ]; then ok data-grown; else fail data-grown "vda4 $sz sectors, /data $kb KiB: $(grep callbox-grow /var/log/messages)"; fi
if cmp -s /boot/callbox.toml /data/etc/callbox.toml; then ok import-config; else fail import-config "boot and data copies differ"; fi
if grep -q "$CR" /boot/wpa_supplicant.conf && ! grep -q "$CR" /data/etc/wpa_supplicant.conf && grep -q 'ssid="callbox-test"' /data/etc/wpa_supplicant.conf; then
	ok import-wifi-crlf; else fail import-wifi-crlf "CRs or content"; fi
m=$(stat -c %a /data/etc/wpa_supplicant.conf); [ "$m" = 600 ] && ok import-wifi-mode || fail import-wifi-mode "mode $m"

if wait_for 90 page; then ok page-local; else fail page-local "no page after 90 s: $(tail -5 /var/log/messages)"; fi
p=$(pid)
args=$(tr '\0' ' ' </proc/$p/cmdline)
data_flag=""
/usr/bin/callbox run -h 2>&1 | grep -q -- '-data' && data_flag="--data /data/callbox"
case "$args" in *"--config /data/etc/callbox.toml"*"$data_flag"*) ok runs-imported-config ;; *) fail runs-imported-config "$args" ;; esac
# callbox runs as its own user with the device groups only, and keeps its
# data to itself (issue 12, item 13).
uid=$(awk '/^Uid:/ { print $2 }' /proc/$p/status)
gids=" $(awk '/^Groups:/ { $1 = ""; print }' /proc/$p/status) "
missing=""
for g in video audio gpio; do
	gid=$(awk -F: -v g=$g '$1 == g { print $3 }' /etc/group)
	case "$gids" in *" $gid "*) ;; *) missing="$missing $g" ;; esac
done
if [ "$uid" = "$(id -u callbox)" ] && [ "$uid" != 0 ] && [ -z "$missing" ]; then ok runs-as-callbox; else fail runs-as-callbox "uid $uid groups$gids missing$missing"; fi
m=$(stat -c '%a %U' /data/callbox)
[ "$m" = "700 callbox" ] && ok data-private || fail data-private "$m"
/usr/libexec/callbox/healthcheck && ok health-ok || fail health-ok "exit $?"

kill -9 "$p"
if wait_for 60 new_pid "$p" && wait_for 60 page; then ok respawn; else fail respawn "pid $(pid) after killing $p"; fi

p=$(pid)
/etc/init.d/S99callbox restart >/dev/null
if wait_for 60 new_pid "$p" && wait_for 60 page; then ok restart; else fail restart "pid $(pid), was $p"; fi

p=$(pid); s=$(cat /run/callbox-supervisor.pid)
/etc/init.d/S99callbox stop >/dev/null
# stop returns once both are gone; init may take a moment to reap them.
if wait_for 5 gone "$p" && wait_for 5 gone "$s" && [ ! -e /run/callbox.pid ] && ! page; then ok stop; else fail stop "callbox $p or supervisor $s still there"; fi

/usr/libexec/callbox/healthcheck && ok health-stopped || fail health-stopped "failed while stopped on purpose"
cp /etc/default/callbox /tmp/default.callbox
printf 'HEALTH_URL=http://127.0.0.1:1/\nHEALTH_FAILURES=3\n' >>/etc/default/callbox
rm -f /run/callbox.stopped
r=""; for i in 1 2 3; do /usr/libexec/callbox/healthcheck 2>/dev/null; r="$r$?"; done
cp /tmp/default.callbox /etc/default/callbox
rm -f /run/callbox-health.failures
[ "$r" = 001 ] && ok health-counts-failures || fail health-counts-failures "exit codes $r, want 0 0 1"

# Power cuts: a data partition with a broken superblock is repaired (from
# a backup superblock) and keeps its content; one beyond repair is made
# anew, and the boot partition's files are imported into it again.
echo keep >/data/callbox/marker
/etc/init.d/S00callbox-data stop
dd if=/dev/zero of=/dev/vda4 bs=1024 seek=1 count=1 conv=notrunc 2>/dev/null
/etc/init.d/S00callbox-data start >/dev/null
if mountpoint -q /data && [ "$(cat /data/callbox/marker 2>/dev/null)" = keep ]; then ok data-repair; else fail data-repair "$(cat /proc/mounts | grep data)"; fi
/etc/init.d/S00callbox-data stop
dd if=/dev/zero of=/dev/vda4 bs=1M count=64 2>/dev/null
/etc/init.d/S00callbox-data start >/dev/null
if mountpoint -q /data && [ ! -e /data/callbox/marker ] && [ -d /data/callbox ] && cmp -s /boot/callbox.toml /data/etc/callbox.toml &&
	dumpe2fs -h /dev/vda4 2>/dev/null | grep -q 'volume name: *callbox-data$'; then ok data-recreate; else fail data-recreate "$(ls -la /data /data/etc)"; fi

echo '# changed on the box' >>/data/etc/callbox.toml
/etc/init.d/S00callbox-data restart >/dev/null
grep -q 'changed on the box' /data/etc/callbox.toml && ok keep-local-edits || fail keep-local-edits "the boot copy was imported again"

/etc/init.d/S99callbox start >/dev/null
if wait_for 90 page; then ok start-again; else fail start-again "no page"; fi
# For the test's log when a check failed: the supervisor's and callbox's.
grep ' callbox' /var/log/messages | sed 's/^/syslog: /' | tail -40
log_ok() { grep -q 'callbox: .*page at http://' /var/log/messages; }
log_ok && ok log-to-syslog || fail log-to-syslog "no callbox output in /var/log/messages"
`

// Debian's busybox-static lacks two things Buildroot's BusyBox has
// (package/busybox/busybox.config: CONFIG_MOUNTPOINT, and
// CONFIG_FEATURE_WGET_TIMEOUT, without which its wget crashes on -T). These
// stand-ins in /usr/local/bin give the image's scripts the same commands
// they have on the box: mountpoint through PATH; wget, which Debian's ash
// runs as its own applet whatever PATH says, through the health check's
// HEALTH_WGET setting (/etc/default/callbox).
var guestShims = map[string]string{
	"mountpoint": `#!/bin/sh
[ "$1" = -q ] && shift
d=$(cd "$1" 2>/dev/null && pwd) || exit 1
awk -v d="$d" '$2 == d { found = 1 } END { exit !found }' /proc/mounts
`,
	// Buildroot's BusyBox package installs udhcpc's script; Debian's
	// BusyBox looks for it elsewhere. This one applies a lease the same way.
	"udhcpc.script": `#!/bin/sh
case "$1" in
deconfig) ip link set "$interface" up; ip addr flush dev "$interface" ;;
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	echo "LEASE $interface $ip"
	;;
esac
`,
	"wget": `#!/bin/sh
t=10
skip=""
for a; do
	shift
	if [ -n "$skip" ]; then t=$a; skip=""; continue; fi
	if [ "$a" = -T ]; then skip=1; continue; fi
	set -- "$@" "$a"
done
exec timeout "$t" busybox wget "$@"
`,
}

// testCache is where downloaded Debian packages are kept between runs.
func testCache(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CALLBOX_IMAGE_TEST_CACHE")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(c, "callbox-test")
	}
	if err := os.MkdirAll(filepath.Join(dir, "debs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vmParallel: the tests that boot a VM (TCG, one vCPU: one host core each)
// run side by side, as many at once as `go test -parallel` allows (the
// number of cores by default): on the 2-core CI machine that halves this
// package's time (570 s one after another). They share only the package
// cache, which debRoot fills under debMu.
var debMu sync.Mutex

// debRoot downloads (once) the arm64 package pkg and returns the directory
// it is unpacked in.
func debRoot(t testing.TB, cache, pkg string) string {
	t.Helper()
	debMu.Lock()
	defer debMu.Unlock()
	dir := filepath.Join(cache, "root-"+pkg)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	debs := filepath.Join(cache, "debs")
	matches, _ := filepath.Glob(filepath.Join(debs, pkg+"_*_arm64.deb"))
	if len(matches) == 0 {
		out, err := exec.Command("sh", "-c", "cd \"$1\" && apt-get download \"$2:arm64\"", "sh", debs, pkg).CombinedOutput()
		matches, _ = filepath.Glob(filepath.Join(debs, pkg+"_*_arm64.deb"))
		if err != nil || len(matches) == 0 {
			testenv.Unavailable(t, "apt-get download %s:arm64 failed (dpkg --add-architecture arm64; apt-get update): %v\n%s", pkg, err, out)
		}
	}
	// Unpack beside the final place and rename: an interrupted unpack is
	// never taken for a complete one.
	tmp, err := os.MkdirTemp(cache, "unpack-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	run(t, nil, "", "dpkg-deb", "-x", matches[len(matches)-1], tmp)
	writeFile(t, filepath.Join(tmp, ".complete"), "", 0o644)
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kernelPackage resolves Debian's current arm64 kernel image package.
func kernelPackage(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("apt-cache", "depends", "linux-image-arm64:arm64").CombinedOutput()
	m := regexp.MustCompile(`Depends: (linux-image-[^\s:]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		testenv.Unavailable(t, "apt-cache knows no linux-image-arm64:arm64 (dpkg --add-architecture arm64; apt-get update): %v\n%s", err, out)
	}
	return string(m[1])
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// guestOptions vary the guest between tests.
type guestOptions struct {
	selftest string            // the guest's /selftest.sh
	modules  []string          // kernel modules beyond guestModules
	devices  []string          // extra qemu -device values
	debs     map[string]string // guest path -> path inside an arm64 package ("pkg:path")
	defaults string            // extra lines for /etc/default/callbox
}

// guest is a running VM.
type guest struct {
	port    int
	serial  string
	qemuLog string
	start   time.Time
	done    chan struct{} // closed when qemu has exited
	err     error         // qemu's exit, valid after done
}

// startGuest builds the guest (firmware, card, initramfs) and boots it;
// the test's cleanup stops it.
func startGuest(t *testing.T, opt guestOptions) *guest {
	t.Helper()
	testenv.Short(t)
	requireImageTools(t)
	for _, p := range []string{"qemu-system-aarch64", "apt-get", "apt-cache", "dpkg-deb", "depmod", "modprobe", "cpio", "timeout", "gzip"} {
		testenv.LookPath(t, p)
	}
	root := repoRoot(t)
	cache := testCache(t)
	kroot := debRoot(t, cache, kernelPackage(t))
	busybox := filepath.Join(debRoot(t, cache, "busybox-static"), "bin", "busybox")
	kvers, _ := filepath.Glob(filepath.Join(kroot, "lib", "modules", "*"))
	if len(kvers) != 1 {
		t.Fatalf("kernel package has %d module trees", len(kvers))
	}
	kver := filepath.Base(kvers[0])
	if _, err := os.Stat(filepath.Join(kvers[0], "modules.dep")); err != nil {
		run(t, nil, "", "depmod", "-b", kroot, kver)
	}

	work := t.TempDir()
	// The firmware, static (CGO_ENABLED=0 needs no arm64 libraries in the
	// initramfs; TestBuildrootGoBuild covers the cgo build).
	callbox := filepath.Join(work, "callbox")
	run(t, append(envWithout("GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS"), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"),
		root, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", callbox, "./cmd/callbox")

	// The card: the boot partition carries a configuration that differs
	// from the image's default, and a wpa_supplicant.conf edited on
	// Windows (CRLF), as a person would leave them.
	example := readFile(t, exampleConfig(t))
	bootConfig := example + "\n# written on the boot partition by the boot test\n"
	c := makeCard(t, "qemu", cardOptions{config: bootConfig})
	wpa := filepath.Join(work, "wpa_supplicant.conf")
	writeFile(t, wpa, strings.Join([]string{
		"ctrl_interface=/run/wpa_supplicant", "country=GB", "network={", `	ssid="callbox-test"`, `	psk="not a real password"`, "}", ""}, "\r\n"), 0o644)
	_, parts := partitions(t, c.img)
	mtools(t, c.img, parts[0].Start, "mcopy", "-o", wpa, "::/wpa_supplicant.conf")
	// A card bigger than the image, as every real one is: the data
	// partition grows into the rest at boot (S01callbox-grow).
	if fi, err := os.Stat(c.img); err != nil || os.Truncate(c.img, fi.Size()+64*mib) != nil {
		t.Fatalf("cannot enlarge the card: %v", err)
	}

	// The root file system: BusyBox, the firmware, the image's overlay and
	// default configuration, fstab as post-build.sh leaves it.
	rootfs := filepath.Join(work, "rootfs")
	copyTree(t, filepath.Join(boardDir(t), "common", "rootfs-overlay"), rootfs)
	copyFile(t, busybox, filepath.Join(rootfs, "bin", "busybox"))
	copyFile(t, callbox, filepath.Join(rootfs, "usr", "bin", "callbox"))
	writeFile(t, filepath.Join(rootfs, "etc", "callbox", "callbox.toml"), example, 0o644)
	writeFile(t, filepath.Join(rootfs, "etc", "fstab"), skeletonFstab, 0o644)
	writeFile(t, filepath.Join(rootfs, "etc", "inittab"), skeletonInittab, 0o644)
	// The users Buildroot's makeusers makes from users.txt.
	passwd, group := guestUsers(t)
	writeFile(t, filepath.Join(rootfs, "etc", "passwd"), passwd, 0o644)
	writeFile(t, filepath.Join(rootfs, "etc", "group"), group, 0o644)
	_, cert := signingPair(t, work, "callbox boot test")
	run(t, append(os.Environ(), "CALLBOX_RAUC_CERT="+cert), "", "sh", filepath.Join(boardDir(t), "common", "post-build.sh"), rootfs, "qemu")
	writeFile(t, filepath.Join(rootfs, "init"), guestInit, 0o755)
	writeFile(t, filepath.Join(rootfs, "etc", "inittab"), guestInittab, 0o644)
	writeFile(t, filepath.Join(rootfs, "boot-test.sh"), guestBoot, 0o755)
	writeFile(t, filepath.Join(rootfs, "selftest.sh"), guestSelftestLib+opt.selftest, 0o755)
	for name, script := range guestShims {
		writeFile(t, filepath.Join(rootfs, "usr", "local", "bin", name), script, 0o755)
	}
	for _, p := range []string{"usr/share/udhcpc/default.script", "etc/udhcpc/default.script"} {
		os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755)
		os.Symlink("/usr/local/bin/udhcpc.script", filepath.Join(rootfs, p))
	}
	writeFile(t, filepath.Join(rootfs, "etc", "default", "callbox"), "HEALTH_WGET=/usr/local/bin/wget\n"+opt.defaults, 0o644)
	// Debian's ash also prefers its own mke2fs applet to /sbin/mke2fs.
	writeFile(t, filepath.Join(rootfs, "etc", "default", "callbox-data"), "MKE2FS=/sbin/mke2fs\n", 0o644)
	for to, from := range opt.debs {
		pkg, path, _ := strings.Cut(from, ":")
		copyFile(t, filepath.Join(debRoot(t, cache, pkg), path), filepath.Join(rootfs, to))
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "lib/modules"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	// As in Buildroot's skeleton: /var/run and /var/log on the tmpfses.
	os.Symlink("../run", filepath.Join(rootfs, "var", "run"))
	os.Symlink("../tmp", filepath.Join(rootfs, "var", "log"))
	var modload []string
	for _, m := range append(slices.Clone(guestModules), opt.modules...) {
		out := run(t, nil, "", "modprobe", "-d", kroot, "-S", kver, "--show-depends", m)
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin X"
			}
			guest := "/lib/modules/" + filepath.Base(f[1])
			if !slices.Contains(modload, guest) {
				copyFile(t, f[1], filepath.Join(rootfs, guest))
				modload = append(modload, guest)
			}
		}
	}
	writeFile(t, filepath.Join(rootfs, "etc", "modload"), strings.Join(modload, "\n")+"\n", 0o644)
	initrd := filepath.Join(work, "initrd.cpio.gz")
	run(t, nil, rootfs, "sh", "-c", "find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > \"$1\"", "sh", initrd)

	g := &guest{port: freePort(t), serial: filepath.Join(work, "serial.log"), qemuLog: filepath.Join(work, "qemu.log"), done: make(chan struct{})}
	// A hard limit on the VM's life, whatever happens to this process.
	args := []string{"-k", "5", "420",
		"qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg",
		"-m", "512", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + g.serial,
		"-kernel", filepath.Join(kroot, "boot", "vmlinuz-"+kver), "-initrd", initrd,
		"-append", "console=ttyAMA0 panic=-1 quiet",
		"-drive", "file=" + c.img + ",if=none,format=raw,id=hd0", "-device", "virtio-blk-pci,drive=hd0",
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:8080", g.port),
		"-device", "virtio-net-pci,netdev=n0"}
	for _, d := range opt.devices {
		args = append(args, "-device", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	qemu := exec.CommandContext(ctx, "timeout", args...)
	// qemu's own messages go to a file: a pipe would keep Wait waiting for
	// as long as any process holds it.
	qemuLog, err := os.Create(g.qemuLog)
	if err != nil {
		t.Fatal(err)
	}
	qemu.Stdout, qemu.Stderr = qemuLog, qemuLog
	// Its own process group, so the cleanup reaches qemu behind timeout(1).
	qemu.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	qemu.Cancel = func() error { return syscall.Kill(-qemu.Process.Pid, syscall.SIGKILL) }
	g.start = time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = qemu.Wait()
		qemuLog.Close()
		close(g.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
	})
	return g
}

// log is the guest's serial console so far.
func (g *guest) log() string {
	b, _ := os.ReadFile(g.serial)
	return string(b)
}

// waitFor waits until the serial console shows marker and returns it;
// it fails the test when qemu exits first or time runs out.
func (g *guest) waitFor(t *testing.T, marker string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if log := g.log(); strings.Contains(log, marker) {
			return log
		}
		select {
		case <-g.done:
			if log := g.log(); strings.Contains(log, marker) {
				return log
			}
			t.Fatalf("qemu exited (%v) before the guest printed %q\n%s\nserial:\n%s", g.err, marker, readFile(t, g.qemuLog), g.log())
		case <-deadline:
			t.Fatalf("no %q from the guest after %v; serial:\n%s", marker, timeout, g.log())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkResults reads the guest's "CHECK name OK|FAIL why" lines: each of
// names ran and passed, and nothing else failed.
func checkResults(t *testing.T, log string, names []string) {
	t.Helper()
	results := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if f := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 3); len(f) == 3 && f[0] == "CHECK" {
			results[f[1]] = f[2]
		}
	}
	for _, name := range names {
		if r, ok := results[name]; !ok {
			t.Errorf("check %s did not run", name)
		} else if r != "OK" {
			t.Errorf("check %s: %s", name, r)
		}
	}
	for name, r := range results {
		if r != "OK" && !slices.Contains(names, name) {
			t.Errorf("check %s: %s", name, r)
		}
	}
	if strings.Contains(log, "MODLOAD FAIL") {
		t.Errorf("a kernel module did not load")
	}
	if t.Failed() {
		t.Logf("serial:\n%s", log)
	}
}

// libcDebs puts glibc in the guest for the dynamically linked programs
// taken from Debian packages ("package:path in it").
var libcDebs = map[string]string{
	"/lib/aarch64-linux-gnu/libc.so.6":             "libc6:lib/aarch64-linux-gnu/libc.so.6",
	"/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1": "libc6:lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
	"/lib/ld-linux-aarch64.so.1":                   "libc6:lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
}

// e2fsprogsDebs are the e2fsprogs programs S00callbox-data runs (the image
// has e2fsprogs; BusyBox alone has no e2fsck) and their libraries.
var e2fsprogsDebs = map[string]string{
	"/sbin/e2fsck":                           "e2fsprogs:sbin/e2fsck",
	"/sbin/mke2fs":                           "e2fsprogs:sbin/mke2fs",
	"/sbin/dumpe2fs":                         "e2fsprogs:sbin/dumpe2fs",
	"/sbin/resize2fs":                        "e2fsprogs:sbin/resize2fs",
	"/lib/aarch64-linux-gnu/libext2fs.so.2":  "libext2fs2:lib/aarch64-linux-gnu/libext2fs.so.2",
	"/lib/aarch64-linux-gnu/libe2p.so.2":     "libext2fs2:lib/aarch64-linux-gnu/libe2p.so.2",
	"/lib/aarch64-linux-gnu/libcom_err.so.2": "libcom-err2:lib/aarch64-linux-gnu/libcom_err.so.2",
	"/lib/aarch64-linux-gnu/libblkid.so.1":   "libblkid1:usr/lib/aarch64-linux-gnu/libblkid.so.1",
	"/lib/aarch64-linux-gnu/libuuid.so.1":    "libuuid1:usr/lib/aarch64-linux-gnu/libuuid.so.1",
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestBootQEMU(t *testing.T) {
	t.Parallel() // see vmParallel
	g := startGuest(t, guestOptions{selftest: guestSelftest, debs: mergeMaps(libcDebs, e2fsprogsDebs)})
	log := g.waitFor(t, "SELFTEST DONE", 280*time.Second)
	t.Logf("guest checks done %v after qemu started", time.Since(g.start).Round(100*time.Millisecond))
	checkResults(t, log, bootChecks)

	// The page, from the host, through qemu's port forward.
	url := fmt.Sprintf("http://127.0.0.1:%d/", g.port)
	client := &http.Client{Timeout: 5 * time.Second}
	var body []byte
	var err error
	for try := 0; try < 20; try++ {
		var resp *http.Response
		resp, err = client.Get(url)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET %s from the host: %v\nserial:\n%s", url, err, g.log())
	}
	if !strings.Contains(strings.ToLower(string(body)), "<html") {
		t.Errorf("GET %s: not an HTML page (%d bytes): %.200q", url, len(body), body)
	}
}
