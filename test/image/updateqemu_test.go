package image

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestUpdateQEMU is the update on a booting machine: an arm64 VM (TCG)
// boots slot A of a card written by post-image.sh from the card itself (the
// root file system is the slot, read-only), installs a verity bundle with
// `callbox update --bundle` through Debian's rauc (D-Bus service, real
// dm-verity and loop devices in the guest kernel) into slot B, restarts
// (tryboot-reboot sets the one-shot flag on the boot partition), and the
// host plays the firmware: bootselect.sh picks slot B from autoboot.txt
// and clears the flag. On B, S99callbox-update confirms the new version
// once callbox served its page and the watchdog daemon ran for 5 s, and
// marks it good, which commits it in autoboot.txt. A first install is cut
// off mid-write by killing QEMU (the power cut): that boot comes back on A.
//
// The root file systems are the test's stand-ins (Debian's arm64 BusyBox,
// rauc, dbus-daemon and their libraries, the static firmware, the image's
// overlay) and the kernel is Debian's, with a small initramfs that only
// loads its modules and mounts the slot named by root= (Buildroot's kernel
// has them built in).
func TestUpdateQEMU(t *testing.T) {
	testenv.Short(t)
	t.Parallel() // see vmParallel
	requireImageTools(t)
	for _, p := range []string{"qemu-system-aarch64", "apt-get", "apt-cache", "dpkg-deb", "dpkg", "readelf", "depmod", "modprobe", "cpio", "gzip", "rauc", "mksquashfs", "timeout"} {
		testenv.LookPath(t, p)
	}
	root := repoRoot(t)
	cache := testCache(t)
	work := t.TempDir()
	key, cert := signingPair(t, work, "callbox project")

	kroot := debRoot(t, cache, kernelPackage(t))
	kvers, _ := filepath.Glob(filepath.Join(kroot, "lib", "modules", "*"))
	if len(kvers) != 1 {
		t.Fatalf("kernel package has %d module trees", len(kvers))
	}
	kver := filepath.Base(kvers[0])
	if _, err := os.Stat(filepath.Join(kvers[0], "modules.dep")); err != nil {
		run(t, nil, "", "depmod", "-b", kroot, kver)
	}

	// The slot's root file system.
	callbox := filepath.Join(work, "callbox")
	run(t, append(envWithout("GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS"), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"),
		root, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", callbox, "./cmd/callbox")
	system := filepath.Join(work, "system")
	closureStart := time.Now()
	debClosure(t, cache, system, []string{"rauc", "dbus-daemon", "busybox-static", "e2fsprogs", "watchdog", "libc6"})
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/locale", "usr/lib/aarch64-linux-gnu/gconv"} {
		os.RemoveAll(filepath.Join(system, d))
	}
	t.Logf("the guest's Debian packages: %v", time.Since(closureStart).Round(time.Millisecond))
	slotRoot := func(version string) string {
		dir := filepath.Join(work, "slot-"+version)
		copyTree(t, system, dir)
		copyTree(t, filepath.Join(boardDir(t), "common", "rootfs-overlay"), dir)
		copyFile(t, callbox, filepath.Join(dir, "usr", "bin", "callbox"))
		writeFile(t, filepath.Join(dir, "etc", "callbox", "callbox.toml"), readFile(t, exampleConfig(t)), 0o644)
		writeFile(t, filepath.Join(dir, "etc", "fstab"), skeletonFstab, 0o644)
		writeFile(t, filepath.Join(dir, "etc", "inittab"), skeletonInittab, 0o644)
		run(t, append(os.Environ(), "CALLBOX_RAUC_CERT="+cert), "", "sh", filepath.Join(boardDir(t), "common", "post-build.sh"), dir, "qemu")
		// The inittab the box has, with this test's boot script.
		inittab := strings.Replace(readFile(t, filepath.Join(dir, "etc", "inittab")), "::sysinit:/etc/init.d/rcS", "::sysinit:/bin/sh /slot-boot.sh", 1)
		writeFile(t, filepath.Join(dir, "etc", "inittab"), inittab, 0o644)
		writeFile(t, filepath.Join(dir, "slot-boot.sh"), slotBoot, 0o755)
		writeFile(t, filepath.Join(dir, "etc", "callbox-version"), version+"\n", 0o644)
		writeFile(t, filepath.Join(dir, "etc", "default", "callbox"), "HEALTH_WGET=/usr/local/bin/wget\n", 0o644)
		writeFile(t, filepath.Join(dir, "etc", "default", "callbox-data"), "MKE2FS=/sbin/mke2fs\n", 0o644)
		writeFile(t, filepath.Join(dir, "etc", "default", "callbox-update"), "TRYBOOT_METHOD=flag\nUPDATE_CONFIRM_SECONDS=5\n", 0o644)
		writeFile(t, filepath.Join(dir, "etc", "dbus-1", "callbox-test-bus.conf"), guestBusConf, 0o644)
		// As in Buildroot's skeleton (dbus-daemon authenticates by user).
		writeFile(t, filepath.Join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/var/run/dbus:/bin/false\n", 0o644)
		writeFile(t, filepath.Join(dir, "etc", "group"), "root:x:0:\nmessagebus:x:101:\n", 0o644)
		// libdbus needs a machine id (Buildroot's dbus package keeps it in
		// /tmp on a read-only root).
		writeFile(t, filepath.Join(dir, "etc", "machine-id"), "c0ffee00c0ffee00c0ffee00c0ffee00\n", 0o444)
		os.MkdirAll(filepath.Join(dir, "var", "lib", "dbus"), 0o755)
		os.Symlink("/etc/machine-id", filepath.Join(dir, "var", "lib", "dbus", "machine-id"))
		for name, script := range guestShims {
			writeFile(t, filepath.Join(dir, "usr", "local", "bin", name), script, 0o755)
		}
		for _, p := range []string{"usr/share/udhcpc/default.script", "etc/udhcpc/default.script"} {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
			os.Remove(filepath.Join(dir, p))
			os.Symlink("/usr/local/bin/udhcpc.script", filepath.Join(dir, p))
		}
		// Buildroot installs the watchdog daemon as /sbin/watchdog.
		os.MkdirAll(filepath.Join(dir, "sbin"), 0o755)
		os.Symlink("/usr/sbin/watchdog", filepath.Join(dir, "sbin", "watchdog"))
		// BusyBox's applets as links (the slot is read-only at run time).
		applets := run(t, nil, "", "/bin/busybox", "--list-full")
		for _, a := range strings.Fields(applets) {
			p := filepath.Join(dir, a)
			if _, err := os.Lstat(p); err == nil {
				continue
			}
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.Symlink("/bin/busybox", p)
		}
		for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "boot", "data", "mnt"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		os.Remove(filepath.Join(dir, "var", "run"))
		os.Symlink("../run", filepath.Join(dir, "var", "run"))
		os.RemoveAll(filepath.Join(dir, "var", "log"))
		os.Symlink("../tmp", filepath.Join(dir, "var", "log"))
		img := filepath.Join(work, "rootfs-"+version+".ext4")
		run(t, nil, "", "mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", dir, img, "160M")
		return img
	}
	slotA := slotRoot("1")

	// The card: post-image.sh with slot A's root file system; 64 MiB
	// more for the data partition to grow into.
	c := makeCard(t, "qemu", cardOptions{rootfs: slotA})
	if fi, err := os.Stat(c.img); err != nil || os.Truncate(c.img, fi.Size()+64*mib) != nil {
		t.Fatalf("cannot enlarge the card: %v", err)
	}
	_, parts := partitions(t, c.img)
	bootOff := parts[0].Start

	// Version 2, signed (verity, as the box requires), on a "USB stick".
	images := filepath.Join(work, "images-2")
	os.MkdirAll(images, 0o755)
	copyFile(t, slotRoot("2"), filepath.Join(images, "rootfs.ext4"))
	run(t, append(os.Environ(), "CALLBOX_RAUC_KEY="+key, "CALLBOX_RAUC_CERT="+cert, "CALLBOX_VERSION=2"),
		"", "bash", filepath.Join(boardDir(t), "common", "make-bundle.sh"), images, "qemu")
	stickDir := filepath.Join(work, "stick")
	os.MkdirAll(stickDir, 0o755)
	copyFile(t, filepath.Join(images, "callbox-qemu.raucb"), filepath.Join(stickDir, "callbox-qemu.raucb"))
	stick := filepath.Join(work, "stick.ext4")
	run(t, nil, "", "mke2fs", "-q", "-F", "-t", "ext4", "-d", stickDir, stick, "256M")

	initrd := slotInitramfs(t, work, kroot, kver)
	boot := func(step string, until func(log string) bool, timeout time.Duration) (slot, log string, exited bool) {
		t.Helper()
		writeFile(t, filepath.Join(work, "test-step"), step+"\n", 0o644)
		mtools(t, c.img, bootOff, "mcopy", "-o", filepath.Join(work, "test-step"), "::/test-step")
		slot = strings.TrimSpace(run(t, nil, "", "sh", filepath.Join(boardDir(t), "qemu", "bootselect.sh"), c.img))
		serial := filepath.Join(work, fmt.Sprintf("serial-%s-%d.log", step, time.Now().UnixNano()))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		qemu := exec.CommandContext(ctx, "timeout", "-k", "5", "400",
			"qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg",
			"-m", "768", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
			"-serial", "file:"+serial,
			"-kernel", filepath.Join(kroot, "boot", "vmlinuz-"+kver), "-initrd", initrd,
			"-append", fmt.Sprintf("console=ttyAMA0 root=/dev/vda%s rauc.slot=%s rootwait ro panic=-1 quiet", slot, slot),
			"-drive", "file="+c.img+",if=none,format=raw,id=hd0", "-device", "virtio-blk-pci,drive=hd0",
			"-drive", "file="+stick+",if=none,format=raw,id=hd1,readonly=on", "-device", "virtio-blk-pci,drive=hd1",
			"-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0",
			"-device", "i6300esb")
		qemu.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		qemu.Cancel = func() error { return syscall.Kill(-qemu.Process.Pid, syscall.SIGKILL) }
		if err := qemu.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- qemu.Wait() }()
		deadline := time.After(timeout)
		for {
			b, _ := os.ReadFile(serial)
			log = string(b)
			if until != nil && until(log) {
				cancel() // the power goes
				<-done
				return slot, log, false
			}
			select {
			case <-done:
				b, _ := os.ReadFile(serial)
				return slot, string(b), true
			case <-deadline:
				cancel()
				<-done
				t.Fatalf("boot %q on slot %s: still running after %v; serial:\n%s", step, slot, timeout, log)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	check := func(log string, names ...string) {
		t.Helper()
		checkResults(t, log, names)
	}

	// 1. The power goes while rauc writes slot B.
	start := time.Now()
	slot, log, _ := boot("install", func(log string) bool { return strings.Contains(log, "Copying image to rootfs.1") }, 300*time.Second)
	if slot != "2" {
		t.Fatalf("first boot on slot %s, want 2", slot)
	}
	t.Logf("boot to mid-install (power cut): %v", time.Since(start).Round(time.Second))
	check(log, "slot", "page", "data-grown")

	// 2. Back on A; install again, to the end, and restart.
	start = time.Now()
	slot, log, exited := boot("install", nil, 300*time.Second)
	if slot != "2" || !exited {
		t.Fatalf("after the power cut: slot %s, qemu exited %v; serial:\n%s", slot, exited, log)
	}
	check(log, "slot", "page", "interrupted-reported", "installed")
	t.Logf("boot, install and restart: %v", time.Since(start).Round(time.Second))
	if got := mtools(t, c.img, bootOff, "mtype", "-t", "::/autoboot.txt"); got != autobootFor("2", "3") {
		t.Errorf("autoboot.txt after the install:\n%s", got)
	}

	// 3. The trial boot of B: confirmed, committed.
	start = time.Now()
	slot, log, exited = boot("confirm", nil, 300*time.Second)
	if slot != "3" || !exited {
		t.Fatalf("trial boot: slot %s, qemu exited %v; serial:\n%s", slot, exited, log)
	}
	check(log, "slot", "version-2", "page", "confirmed", "pairing-kept")
	t.Logf("trial boot to confirmation: %v", time.Since(start).Round(time.Second))
	if got := mtools(t, c.img, bootOff, "mtype", "-t", "::/autoboot.txt"); got != autobootFor("3", "2") {
		t.Errorf("autoboot.txt after the confirmation:\n%s", got)
	}
	if out := mtools(t, c.img, bootOff, "mdir", "-b", "::/"); strings.Contains(out, "tryboot") {
		t.Errorf("the tryboot flag is still on the boot partition:\n%s", out)
	}
}

// slotBoot is the slot's sysinit: what Buildroot's rcS and the image's
// init scripts do, the D-Bus system bus and rauc's service, then the step
// the test asked for (/boot/test-step).
const slotBoot = `export PATH=/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
ip link set lo up
syslogd
ok() { echo "CHECK $1 OK"; }
fail() { echo "CHECK $1 FAIL $2"; }
page() { /usr/local/bin/wget -q -T 3 -O /dev/null http://127.0.0.1:8080/; }
wait_for() { n=$(($1 * 5)); shift; while ! "$@"; do [ $n -le 0 ] && return 1; n=$((n-1)); sleep 0.2; done; }
grep -q "rauc.slot=$(cat /proc/cmdline | sed 's/.*rauc.slot=\([0-9]*\).*/\1/')" /proc/cmdline && ok slot
/etc/init.d/S00callbox-data start
/etc/init.d/S01callbox-grow start
sz=$(cat /sys/class/block/vda4/size); kb=$(df -k /data | awk 'NR == 2 { print $2 }')
if mountpoint -q /data && [ "$sz" -ge 262144 ] && [ "$kb" -gt 110000 ]; then ok data-grown; else fail data-grown "vda4 $sz sectors, /data $kb KiB"; fi
mkdir -p /run/dbus
dbus-daemon --config-file=/etc/dbus-1/callbox-test-bus.conf --fork --print-pid || echo "DBUS FAILED"
rauc service >/tmp/rauc.log 2>&1 &
wait_for 20 rauc status >/dev/null 2>&1 || { echo "RAUC SERVICE DOWN"; cat /tmp/rauc.log; }
/etc/init.d/S99callbox start
/etc/init.d/S99callbox-update start
# The rest runs beside init: BusyBox init acts on reboot and poweroff only
# once sysinit has finished.
(
wait_for 120 page && ok page || fail page "no page: $(tail -5 /var/log/messages)"
# After the page: a slow first start under TCG is not a hang.
/etc/init.d/S98watchdog start
echo "VERSION $(cat /etc/callbox-version)"
[ "$(cat /etc/callbox-version)" = 2 ] && ok version-2
step=$(cat /boot/test-step 2>/dev/null)
echo "STEP $step"
status() { /usr/bin/callbox update --status 2>/dev/null | sed -n 's/.*"state": "\(.*\)".*/\1/p'; }
case "$step" in
install)
	state=$(status)
	echo "STATE $state"
	if [ "$state" = failed ]; then
		/usr/bin/callbox update --status | grep -q interrupted && ok interrupted-reported || fail interrupted-reported "$(/usr/bin/callbox update --status)"
	fi
	echo "a phone paired before the update" >/data/callbox/test-pairing
	sync
	mount -o ro /dev/vdb /mnt
	/usr/bin/callbox update --bundle /mnt/callbox-qemu.raucb --no-reboot && ok installed || { fail installed "exit $?"; tail -20 /tmp/rauc.log; }
	reboot
	;;
confirm)
	confirmed() { [ "$(status)" = good ]; }
	wait_for 120 confirmed && ok confirmed || fail confirmed "$(/usr/bin/callbox update --status) $(rauc status 2>&1 | tail -12)"
	grep -q "paired before" /data/callbox/test-pairing && ok pairing-kept || fail pairing-kept "gone"
	poweroff
	;;
esac
) </dev/null >/dev/console 2>&1 &
`

// guestBusConf is a system bus for rauc's service (the box uses dbus's own
// configuration with rauc's policy file).
const guestBusConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=/run/dbus/system_bus_socket</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
`

// slotModules are the Debian kernel modules the slot's system needs: the
// disks and network, the file systems, the watchdog, and what rauc mounts
// a verity bundle with.
var slotModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "ext4", "vfat", "nls_cp437", "nls_ascii",
	"i6300esb", "loop", "squashfs", "dm_mod", "dm_verity"}

// slotInitramfs loads the modules and mounts root= read-only: what
// Buildroot's kernel, with these built in, does by itself.
func slotInitramfs(t *testing.T, work, kroot, kver string) string {
	t.Helper()
	dir := filepath.Join(work, "initramfs")
	busybox := filepath.Join(debRoot(t, testCache(t), "busybox-static"), "bin", "busybox")
	copyFile(t, busybox, filepath.Join(dir, "bin", "busybox"))
	var modload []string
	for _, m := range slotModules {
		out := run(t, nil, "", "modprobe", "-d", kroot, "-S", kver, "--show-depends", m)
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue
			}
			guest := "/lib/modules/" + filepath.Base(f[1])
			if !slices.Contains(modload, guest) {
				copyFile(t, f[1], filepath.Join(dir, guest))
				modload = append(modload, guest)
			}
		}
	}
	writeFile(t, filepath.Join(dir, "etc", "modload"), strings.Join(modload, "\n")+"\n", 0o644)
	writeFile(t, filepath.Join(dir, "init"), `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t devtmpfs dev /dev
while read -r m; do insmod "$m" || echo "MODLOAD FAIL $m"; done </etc/modload
for a in $(cat /proc/cmdline); do case "$a" in root=*) root=${a#root=} ;; esac; done
i=0; while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o ro "$root" /newroot || { echo "cannot mount $root"; sleep 5; poweroff -f; }
umount /dev /proc
exec switch_root /newroot /sbin/init
`, 0o755)
	img := filepath.Join(work, "initrd.cpio.gz")
	run(t, nil, dir, "sh", "-c", "find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > \"$1\"", "sh", img)
	return img
}

// debClosure unpacks the arm64 packages pkgs into dir, and with them every
// package that provides a shared library their programs and libraries
// need: a NEEDED soname missing from dir is looked up in this machine's
// dpkg database (the same Debian release, amd64) and its package's arm64
// build is added, until nothing is missing.
func debClosure(t *testing.T, cache, dir string, pkgs []string) {
	t.Helper()
	// The list a previous run resolved (dpkg -S takes a second a name).
	listFile := filepath.Join(cache, "closure-"+strings.Join(pkgs, "+")+".txt")
	if b, err := os.ReadFile(listFile); err == nil {
		for _, p := range strings.Fields(string(b)) {
			copyTree(t, debRoot(t, cache, p), dir)
		}
		linkLoader(dir)
		return
	}
	done := map[string]bool{}
	scanned := map[string]bool{}
	needed := map[string]bool{}
	queue := slices.Clone(pkgs)
	for len(queue) > 0 {
		// One apt-get for every package not in the cache yet (each call
		// reads the package lists: seconds).
		var fetch []string
		for _, p := range queue {
			if m, _ := filepath.Glob(filepath.Join(cache, "debs", p+"_*_arm64.deb")); len(m) == 0 {
				if _, err := os.Stat(filepath.Join(cache, "root-"+p, ".complete")); err != nil {
					fetch = append(fetch, p+":arm64")
				}
			}
		}
		if len(fetch) > 0 {
			cmd := exec.Command("apt-get", append([]string{"download"}, fetch...)...)
			cmd.Dir = filepath.Join(cache, "debs")
			debMu.Lock() // the other VM tests fill the same cache
			cmd.Run()    // debRoot below says what is missing
			debMu.Unlock()
		}
		for _, p := range queue {
			if !done[p] {
				copyTree(t, debRoot(t, cache, p), dir)
				done[p] = true
			}
		}
		queue = nil
		have := map[string]bool{}
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return nil
			}
			have[fi.Name()] = true
			if !fi.Mode().IsRegular() || scanned[p] {
				return nil
			}
			scanned[p] = true
			if fi.Mode()&0o111 == 0 && !strings.Contains(fi.Name(), ".so") {
				return nil
			}
			f, err := elf.Open(p)
			if err != nil {
				return nil // not an ELF file
			}
			libs, _ := f.ImportedLibraries()
			f.Close()
			for _, l := range libs {
				needed[l] = true
			}
			return nil
		})
		for so := range needed {
			if have[so] || so == "ld-linux-aarch64.so.1" {
				continue
			}
			out, err := exec.Command("dpkg", "-S", "*/"+so).Output()
			if err != nil {
				t.Fatalf("no package on this machine provides %s (needed by the guest's programs)", so)
			}
			pkg, _, _ := strings.Cut(strings.SplitN(string(out), "\n", 2)[0], ":")
			if !done[pkg] && !slices.Contains(queue, pkg) {
				queue = append(queue, pkg)
			}
		}
	}
	var list []string
	for p := range done {
		list = append(list, p)
	}
	slices.Sort(list)
	os.WriteFile(listFile, []byte(strings.Join(list, "\n")+"\n"), 0o644)
	linkLoader(dir)
}

// linkLoader: Debian's ld.so searches the multiarch directories; /lib is a
// link to /usr/lib on a merged-/usr system, not in these packages.
func linkLoader(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "lib", "ld-linux-aarch64.so.1")); err != nil {
		os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
		os.Symlink("aarch64-linux-gnu/ld-linux-aarch64.so.1", filepath.Join(dir, "lib", "ld-linux-aarch64.so.1"))
	}
}
