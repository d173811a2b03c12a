package image

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/update"
)

// signingPair makes a self-signed update signing key and certificate in
// dir, as a project (or the test standing in for one) would.
func signingPair(t testing.TB, dir, cn string) (key, cert string) {
	t.Helper()
	testenv.LookPath(t, "openssl")
	key = filepath.Join(dir, strings.ReplaceAll(cn, " ", "-")+".key.pem")
	cert = filepath.Join(dir, strings.ReplaceAll(cn, " ", "-")+".cert.pem")
	run(t, nil, "", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
		"-subj", "/O=callbox/CN="+cn, "-keyout", key, "-out", cert)
	return key, cert
}

// checkRAUCTarget: what rauc-post-build.sh leaves in a target — the
// board's system.conf naming the board, the certificate (and no key), the
// tryboot method, and one shutdown step in inittab.
func checkRAUCTarget(t *testing.T, target, board, cert string) {
	t.Helper()
	conf := readFile(t, filepath.Join(target, "etc", "rauc", "system.conf"))
	for _, want := range []string{"compatible=callbox-" + board + "\n", "bootloader=custom\n",
		"bootloader-custom-backend=/usr/libexec/callbox/rauc-backend\n", "path=/etc/rauc/keyring.pem\n", "bundle-formats=-plain\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("system.conf lacks %q:\n%s", want, conf)
		}
	}
	slots := []string{"[slot.rootfs.0]\ndevice=/dev/vda2\ntype=ext4\nbootname=2\n", "[slot.rootfs.1]\ndevice=/dev/vda3\ntype=ext4\nbootname=3\n"}
	method := "flag"
	if board != "qemu" {
		slots = []string{"[slot.rootfs.0]\ndevice=/dev/mmcblk0p5\ntype=ext4\nbootname=2\n", "[slot.boot.0]\ndevice=/dev/mmcblk0p2\ntype=vfat\nparent=rootfs.0\n",
			"[slot.rootfs.1]\ndevice=/dev/mmcblk0p6\ntype=ext4\nbootname=3\n", "[slot.boot.1]\ndevice=/dev/mmcblk0p3\ntype=vfat\nparent=rootfs.1\n"}
		method = "firmware"
	}
	for _, s := range slots {
		if !strings.Contains(conf, s) {
			t.Errorf("system.conf lacks\n%s", s)
		}
	}
	if readFile(t, filepath.Join(target, "etc", "rauc", "keyring.pem")) != readFile(t, cert) {
		t.Error("the target's keyring is not the signing certificate")
	}
	if strings.Contains(conf+readFile(t, filepath.Join(target, "etc", "rauc", "keyring.pem")), "PRIVATE KEY") {
		t.Error("a private key went into the target")
	}
	if got := readFile(t, filepath.Join(target, "etc", "default", "callbox-update")); got != "TRYBOOT_METHOD="+method+"\n" {
		t.Errorf("/etc/default/callbox-update = %q, want method %s", got, method)
	}
	inittab := readFile(t, filepath.Join(target, "etc", "inittab"))
	if n := strings.Count(inittab, "::shutdown:/usr/libexec/callbox/tryboot-reboot\n"); n != 1 {
		t.Errorf("inittab has %d tryboot-reboot shutdown steps, want 1", n)
	}
	// After rcK, before umount -a (which takes /run and the request).
	if i, j, k := strings.Index(inittab, "rcK"), strings.Index(inittab, "tryboot-reboot"), strings.Index(inittab, "umount -a -r"); !(i < j && j < k) {
		t.Errorf("tryboot-reboot not between rcK and umount -a -r:\n%s", inittab)
	}
	if _, err := os.Stat(filepath.Join(target, "etc", "rauc")); err != nil {
		t.Error(err)
	}
}

// raucBench is a box's update machinery on this machine: the slots are
// files, the boot partition's files a directory, and everything that acts
// on them is real — the host's rauc (service on a private system bus),
// the image's system.conf (its devices pointed at the files), rauc-backend,
// tryboot-reboot, QEMU's bootselect.sh and the callbox binary. A "boot"
// is what the firmware and the kernel would do: RAM (/run) is lost, the
// slot comes from autoboot.txt and the one-shot tryboot flag, and the
// kernel command line names it (rauc's service is told the same slot).
type raucBench struct {
	t                       *testing.T
	dir, boot, data, runDir string
	slots                   map[string]string // bootname -> slot file
	conf, defaults, cmdline string
	bus                     string
	callbox                 string
	service                 *exec.Cmd
	watchdog                *exec.Cmd // stands in for the watchdog daemon (its pid file)
	booted                  string
}

const benchSlotSize = 24 * mib

func newRAUCBench(t *testing.T, cert string) *raucBench {
	t.Helper()
	for _, p := range []string{"rauc", "dbus-daemon", "mksquashfs", "mke2fs", "debugfs", "mtype"} {
		testenv.LookPath(t, p)
	}
	b := &raucBench{t: t, dir: t.TempDir(), slots: map[string]string{}}
	b.boot = filepath.Join(b.dir, "boot")
	b.data = filepath.Join(b.dir, "data")
	b.runDir = filepath.Join(b.dir, "run")
	b.cmdline = filepath.Join(b.dir, "cmdline")
	for _, d := range []string{b.boot, b.data, b.runDir} {
		os.MkdirAll(d, 0o755)
	}
	// The boot partition's autoboot.txt as post-image.sh writes it.
	c := makeCard(t, "qemu", cardOptions{})
	_, parts := partitions(t, c.img)
	writeFile(t, filepath.Join(b.boot, "autoboot.txt"), mtools(t, c.img, parts[0].Start, "mtype", "-t", "::/autoboot.txt"), 0o644)

	// Slot A holds version 1 as flashed; slot B is empty.
	b.slots["2"] = filepath.Join(b.dir, "slot-a")
	b.slots["3"] = filepath.Join(b.dir, "slot-b")
	copyFile(t, standInRootfs(t, b.dir, "1", "works", benchSlotSize), b.slots["2"])
	if err := os.WriteFile(b.slots["3"], make([]byte, benchSlotSize), 0o644); err != nil {
		t.Fatal(err)
	}

	b.defaults = filepath.Join(b.dir, "callbox-update.defaults")
	writeFile(t, b.defaults, fmt.Sprintf("AUTOBOOT=%s\nCMDLINE=%s\nSTATE=%s\nTRYBOOT_REQUEST=%s\nTRYBOOT_METHOD=flag\nTRYBOOT_FLAG_DIR=%s\n",
		filepath.Join(b.boot, "autoboot.txt"), b.cmdline, filepath.Join(b.data, "rauc", "slot-state"),
		filepath.Join(b.runDir, "callbox", "tryboot"), b.boot), 0o644)
	backend := filepath.Join(b.dir, "rauc-backend")
	writeFile(t, backend, fmt.Sprintf("#!/bin/sh\nexport CALLBOX_UPDATE_DEFAULTS=%s\nexec sh %s \"$@\"\n", b.defaults, overlayScript(t, "rauc-backend")), 0o755)

	// The QEMU image's system.conf, its devices and paths moved here.
	// This host's kernel has no device-mapper, which verity bundles
	// need, so plain bundles are allowed here (not on the box).
	conf := readFile(t, filepath.Join(boardDir(t), "qemu", "rauc-system.conf"))
	for from, to := range map[string]string{
		"@COMPATIBLE@": "callbox-qemu", "/dev/vda2": b.slots["2"], "/dev/vda3": b.slots["3"],
		"/data/rauc/status": filepath.Join(b.data, "rauc", "status"), "/etc/rauc/keyring.pem": cert,
		"/usr/libexec/callbox/rauc-backend": backend, "mountprefix=/run/rauc": "mountprefix=" + filepath.Join(b.dir, "mnt"),
		"bundle-formats=-plain\n": "",
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("qemu/rauc-system.conf has no %q", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	b.conf = filepath.Join(b.dir, "system.conf")
	writeFile(t, b.conf, conf, 0o644)

	// A private system bus for rauc's service.
	sock := filepath.Join(b.dir, "bus")
	b.bus = "unix:path=" + sock
	busConf := filepath.Join(b.dir, "bus.conf")
	writeFile(t, busConf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>`+b.bus+`</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
`, 0o644)
	b.daemon(exec.Command("dbus-daemon", "--nofork", "--config-file="+busConf))
	t.Cleanup(b.stopService)
	waitFile(t, sock, 10*time.Second)

	b.callbox = filepath.Join(b.dir, "callbox")
	run(t, nil, repoRoot(t), "go", "build", "-o", b.callbox, "./cmd/callbox")
	return b
}

// daemon starts cmd in the background until the test ends.
func (b *raucBench) daemon(cmd *exec.Cmd) *exec.Cmd {
	b.t.Helper()
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.bus)
	log, err := os.Create(filepath.Join(b.dir, filepath.Base(cmd.Path)+fmt.Sprint(time.Now().UnixNano())+".log"))
	if err != nil {
		b.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	return cmd
}

func overlayScript(t testing.TB, name string) string {
	return filepath.Join(boardDir(t), "common", "rootfs-overlay", "usr", "libexec", "callbox", name)
}

func waitFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// standInRootfs is a root file system image of the given version: its
// /etc/callbox-version says the version and whether its callbox "works"
// (serves its page) or is "broken" (never does). Random content keeps it
// from compressing to nothing.
func standInRootfs(t testing.TB, dir, version, behaviour string, size int) string {
	t.Helper()
	root := filepath.Join(dir, "rootdir-"+version)
	writeFile(t, filepath.Join(root, "etc", "callbox-version"), version+" "+behaviour+"\n", 0o644)
	blob := make([]byte, size/3)
	rand.Read(blob)
	writeFile(t, filepath.Join(root, "usr", "share", "blob"), string(blob), 0o644)
	img := filepath.Join(dir, "rootfs-"+version+".ext4")
	run(t, nil, "", "mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", root, img, fmt.Sprint(size/1024))
	return img
}

// makeBundle signs a bundle of a stand-in root file system with
// make-bundle.sh, as post-image.sh does.
func makeBundle(t testing.TB, dir, version, behaviour, key, cert string, size int) string {
	t.Helper()
	images := filepath.Join(dir, "images-"+version)
	os.MkdirAll(images, 0o755)
	copyFile(t, standInRootfs(t, dir, version, behaviour, size), filepath.Join(images, "rootfs.ext4"))
	run(t, append(os.Environ(), "CALLBOX_RAUC_KEY="+key, "CALLBOX_RAUC_CERT="+cert, "CALLBOX_VERSION="+version, "CALLBOX_BUNDLE_FORMAT=plain"),
		"", "bash", filepath.Join(boardDir(t), "common", "make-bundle.sh"), images, "qemu")
	return filepath.Join(images, "callbox-qemu.raucb")
}

// powerOn boots: RAM is empty, the firmware (bootselect.sh) picks the slot
// and clears the tryboot flag, the kernel command line names the slot, and
// rauc's service starts on it. It returns the slot's bootname.
func (b *raucBench) powerOn() string {
	b.t.Helper()
	b.stopService()
	os.RemoveAll(b.runDir)
	os.MkdirAll(b.runDir, 0o755)
	b.booted = strings.TrimSpace(run(b.t, nil, "", "sh", filepath.Join(boardDir(b.t), "qemu", "bootselect.sh"), b.boot))
	writeFile(b.t, b.cmdline, fmt.Sprintf("console=ttyAMA0 root=/dev/vda%s rauc.slot=%s rootwait ro\n", b.booted, b.booted), 0o644)
	// rauc reads the booted slot from /proc/cmdline, which is this
	// machine's: tell it what the command line above says.
	b.service = b.daemon(exec.Command("rauc", "--conf="+b.conf, "service", "--override-boot-slot="+b.booted))
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command("rauc", "--conf="+b.conf, "status")
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.bus)
		if err := cmd.Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatal("rauc's service did not answer within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.watchdog = b.daemon(exec.Command("sleep", "600"))
	writeFile(b.t, filepath.Join(b.runDir, "watchdog.pid"), fmt.Sprint(b.watchdog.Process.Pid), 0o644)
	return b.booted
}

func (b *raucBench) stopService() {
	for _, c := range []*exec.Cmd{b.service, b.watchdog} {
		if c != nil && c.Process != nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	b.service, b.watchdog = nil, nil
	// A service killed mid-install leaves the bundle mounted (a real
	// power cut takes the mount with it).
	mounts, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], b.dir+"/") {
			exec.Command("umount", "-l", f[1]).Run()
		}
	}
}

// reboot shuts down cleanly (the shutdown hook runs) and powers on.
func (b *raucBench) reboot() string {
	b.t.Helper()
	run(b.t, append(os.Environ(), "CALLBOX_UPDATE_DEFAULTS="+b.defaults), "", "sh", overlayScript(b.t, "tryboot-reboot"))
	return b.powerOn()
}

// updateCmd runs callbox update with the bench's rauc and status file.
func (b *raucBench) updateCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.callbox, append([]string{"update", "--rauc-conf", b.conf,
		"--update-status", filepath.Join(b.data, "callbox", "update.json")}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.bus)
	return cmd
}

// slotVersion reads /etc/callbox-version from a slot.
func (b *raucBench) slotVersion(bootname string) string {
	b.t.Helper()
	out, _ := exec.Command("debugfs", "-R", "cat /etc/callbox-version", b.slots[bootname]).Output()
	return strings.TrimSpace(string(out))
}

// startCallbox runs the booted slot's callbox: for a "works" slot, the
// real callbox serving its page (simulated board, open pairing); for a
// "broken" one nothing. It returns the page's URL.
func (b *raucBench) startCallbox() string {
	b.t.Helper()
	port := freePort(b.t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if !strings.HasSuffix(b.slotVersion(b.booted), " works") {
		return url
	}
	cmd := b.daemon(exec.Command(b.callbox, "run", "--board", "sim", "--open", "--mdns-name", "", "--relay", "",
		"--http", fmt.Sprintf("127.0.0.1:%d", port), "--data", filepath.Join(b.data, "callbox"),
		"--rauc-conf", b.conf, "--update-status", filepath.Join(b.data, "callbox", "update.json"), "--update-reboot-command", ""))
	b.t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("callbox did not serve %s within 30 s", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// confirm runs S99callbox-update's command for at most budget (the box
// is reset by the watchdog when the new version never comes up).
func (b *raucBench) confirm(url string, budget time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	out, err := b.updateCmd(ctx, "--confirm", "--confirm-after", "2s", "--health-url", url,
		"--watchdog-pidfile", filepath.Join(b.runDir, "watchdog.pid")).CombinedOutput()
	return string(out), err
}

func (b *raucBench) status() update.Status {
	b.t.Helper()
	st, err := update.ReadStatus(filepath.Join(b.data, "callbox", "update.json"))
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

func (b *raucBench) autoboot() string {
	return readFile(b.t, filepath.Join(b.boot, "autoboot.txt"))
}

func autobootFor(committed, try string) string {
	return fmt.Sprintf("[all]\ntryboot_a_b=1\nboot_partition=%s\n[tryboot]\nboot_partition=%s\n", committed, try)
}

func fileSHA(t testing.TB, path string) [32]byte { return sha(t, path) }

// TestUpdateRAUC installs bundles built with this machine's rauc into
// file-backed slots through `callbox update` and rauc's service, then
// boots the way the firmware would (raucBench): a version that works is
// tried, confirmed and kept; one whose callbox never serves its page is
// tried once and the box comes back on the old slot, the page saying the
// update failed; a bundle signed with another key is refused with nothing
// written; a power cut mid-install still boots the old slot; the data
// partition's files (pairings) survive all of it.
func TestUpdateRAUC(t *testing.T) {
	testenv.Short(t)
	t.Parallel() // see vmParallel
	requireImageTools(t)
	work := t.TempDir()
	key, cert := signingPair(t, work, "callbox project")
	otherKey, otherCert := signingPair(t, work, "someone else")
	b := newRAUCBench(t, cert)
	pairings := filepath.Join(b.data, "callbox", "tokens.json")
	writeFile(t, pairings, `{"tokens":["a phone paired before the update"]}`, 0o600)

	if got := b.powerOn(); got != "2" || b.slotVersion("2") != "1 works" {
		t.Fatalf("first boot on slot %s (%q), want 2 with version 1", got, b.slotVersion("2"))
	}

	// 1. Version 2 works: tried once, confirmed, kept.
	v2 := makeBundle(t, work, "2", "works", key, cert, benchSlotSize)
	start := time.Now()
	out, err := b.updateCmd(context.Background(), "--bundle", v2, "--no-reboot").CombinedOutput()
	if err != nil {
		t.Fatalf("callbox update --bundle: %v\n%s", err, out)
	}
	t.Logf("install of a %d MiB slot: %v", benchSlotSize/mib, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(string(out), "100%") {
		t.Errorf("no progress up to 100%% in the output:\n%s", out)
	}
	if st := b.status(); st.State != update.Installed || st.To != "3" || st.From != "2" || st.Version != "2" {
		t.Errorf("after install: %+v", st)
	}
	if got := b.autoboot(); got != autobootFor("2", "3") {
		t.Errorf("install changed the committed slot:\n%s", got)
	}
	if b.slotVersion("3") != "2 works" {
		t.Fatalf("slot B holds %q after the install", b.slotVersion("3"))
	}
	if got := b.reboot(); got != "3" {
		t.Fatalf("the trial boot started slot %s, want 3", got)
	}
	if _, err := os.Stat(filepath.Join(b.boot, "tryboot")); err == nil {
		t.Error("the tryboot flag is still set after the trial boot started")
	}
	url := b.startCallbox()
	if out, err := b.confirm(url, 60*time.Second); err != nil {
		t.Fatalf("confirm on a working version: %v\n%s", err, out)
	}
	if st := b.status(); st.State != update.Good {
		t.Errorf("after confirmation: %+v", st)
	}
	if got := b.autoboot(); got != autobootFor("3", "2") {
		t.Errorf("mark-good did not commit slot 3:\n%s", got)
	}
	if got := b.reboot(); got != "3" {
		t.Errorf("after a confirmed update the box boots slot %s, want 3", got)
	}

	// 2. Version 3 never serves its page: one trial, then back on slot 3.
	v3 := makeBundle(t, work, "3", "broken", key, cert, benchSlotSize)
	if out, err := b.updateCmd(context.Background(), "--bundle", v3, "--no-reboot").CombinedOutput(); err != nil {
		t.Fatalf("callbox update --bundle (version 3): %v\n%s", err, out)
	}
	if got := b.reboot(); got != "2" || b.slotVersion("2") != "3 broken" {
		t.Fatalf("trial boot on slot %s (%q), want 2 with version 3", got, b.slotVersion("2"))
	}
	url = b.startCallbox()
	// The watchdog resets the box while confirmation still waits.
	if out, err := b.confirm(url, 6*time.Second); err == nil {
		t.Fatalf("confirm succeeded on a version that never served its page:\n%s", out)
	}
	if st := b.status(); st.State != update.Trying {
		t.Errorf("during the failed trial: %+v", st)
	}
	if got := b.autoboot(); got != autobootFor("3", "2") {
		t.Errorf("the failed trial changed the committed slot:\n%s", got)
	}
	if got := b.powerOn(); got != "3" { // the watchdog reset: no clean shutdown
		t.Fatalf("after the watchdog reset the box booted slot %s, want 3", got)
	}
	url = b.startCallbox()
	if out, err := b.confirm(url, 30*time.Second); err != nil {
		t.Fatalf("confirm after the rollback: %v\n%s", err, out)
	}
	if st := b.status(); st.State != update.Failed || !strings.Contains(st.Message, "did not come up") {
		t.Errorf("after the rollback: %+v", st)
	}
	var api struct {
		State   string `json:"state"`
		Message string `json:"message"`
	}
	resp, err := http.Get(url + "api/update")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&api)
	resp.Body.Close()
	if api.State != "failed" || !strings.Contains(api.Message, "did not come up") {
		t.Errorf("GET /api/update after the rollback: %+v", api)
	}
	raucStatus := run(t, append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.bus), "", "rauc", "--conf="+b.conf, "status", "--output-format=shell")
	if !strings.Contains(raucStatus, "RAUC_SLOT_BOOT_STATUS_") || !strings.Contains(raucStatus, "'bad'") {
		t.Errorf("rauc status does not show the failed slot as bad:\n%s", raucStatus)
	}

	// 3. Signed with another key: refused, nothing written; from the
	// console and uploaded from the page.
	before, autoBefore := fileSHA(t, b.slots["2"]), b.autoboot()
	foreign := makeBundle(t, work, "4", "works", otherKey, otherCert, benchSlotSize)
	cmd := b.updateCmd(context.Background(), "--bundle", foreign, "--no-reboot")
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("a bundle signed with another key: %v (want exit 3)\n%s", err, out)
	}
	if st := b.status(); st.State != update.Refused || !strings.Contains(st.Message, "signature") {
		t.Errorf("after a foreign bundle: %+v", st)
	}
	if code := postBundle(t, url, foreign); code != http.StatusAccepted {
		t.Errorf("POST /api/update: %d, want 202", code)
	}
	if st := waitState(t, url, "refused"); !strings.Contains(st.Message, "signature") {
		t.Errorf("GET /api/update after uploading a foreign bundle: %+v", st)
	}
	if fileSHA(t, b.slots["2"]) != before || b.autoboot() != autoBefore {
		t.Error("a refused bundle changed the inactive slot or autoboot.txt")
	}
	// The upload is deleted once the install ended (just after the
	// state says so).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		leftovers, _ := filepath.Glob(filepath.Join(b.data, "callbox", ".upload-*"))
		if len(leftovers) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("uploads left on the data partition: %v", leftovers)
			break
		}
	}

	// 4. The power goes mid-install: the box boots its committed slot.
	big := makeBundle(t, work, "5", "works", key, cert, 4*benchSlotSize)
	b.slots["big"] = b.slots["2"]
	os.Truncate(b.slots["2"], 4*benchSlotSize)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd = b.updateCmd(ctx, "--bundle", big, "--no-reboot")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copying := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Copying image") {
				copying <- sc.Text()
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-copying:
	case <-time.After(60 * time.Second):
		t.Fatal("the install never reached the copy")
	}
	// The power goes: callbox update, rauc and RAM with them.
	cmd.Process.Kill()
	b.stopService()
	cmd.Wait()
	pw.Close()
	if got := b.powerOn(); got != "3" {
		t.Fatalf("after a power cut mid-install the box booted slot %s, want 3", got)
	}
	url = b.startCallbox()
	if out, err := b.confirm(url, 30*time.Second); err != nil {
		t.Fatalf("confirm after the power cut: %v\n%s", err, out)
	}
	if st := b.status(); st.State != update.Failed || !strings.Contains(st.Message, "interrupted") {
		t.Errorf("after the power cut: %+v", st)
	}
	if got := b.autoboot(); got != autobootFor("3", "2") {
		t.Errorf("the interrupted install changed autoboot.txt:\n%s", got)
	}

	// 5. The data partition's files survived everything.
	if got := readFile(t, pairings); !strings.Contains(got, "a phone paired before the update") {
		t.Errorf("pairings after updates and rollbacks: %q", got)
	}
}

// postBundle uploads a bundle to the page's API as the page does.
func postBundle(t *testing.T, url, bundle string) int {
	t.Helper()
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := http.Post(url+"api/update", "application/octet-stream", f)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Logf("POST /api/update: %s %s", resp.Status, body)
	}
	return resp.StatusCode
}

// waitState polls GET /api/update until the state is want.
func waitState(t *testing.T, url, want string) update.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var st update.Status
	for {
		resp, err := http.Get(url + "api/update")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if string(st.State) == want {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/update: state %q after 30 s, want %s: %+v", st.State, want, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGrowData grows the data partition of both card layouts, as written by
// post-image.sh, to the end of a bigger card (the MBR and, on the Raspberry
// Pi, the extended partition and the EBR), then its file system with
// resize2fs: the other partitions stay as they were, sfdisk agrees, and the
// file system checks clean at the new size.
func TestGrowData(t *testing.T) {
	testenv.LookPath(t, "resize2fs")
	for _, c := range []struct {
		board string
		data  int
	}{{"qemu", 4}, {"rpi4", 7}} {
		t.Run(c.board, func(t *testing.T) {
			card := makeCard(t, c.board, cardOptions{})
			_, before := partitions(t, card.img)
			fi, err := os.Stat(card.img)
			if err != nil {
				t.Fatal(err)
			}
			bigger := fi.Size() + 100*mib
			if err := os.Truncate(card.img, bigger); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(card.img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			p, changed, err := update.GrowPartition(f, bigger, c.data)
			f.Close()
			if err != nil || !changed {
				t.Fatalf("GrowPartition: %+v %v %v", p, changed, err)
			}
			_, after := partitions(t, card.img)
			if len(after) != len(before) {
				t.Fatalf("%d partitions after growing, %d before", len(after), len(before))
			}
			last := after[len(after)-1]
			if last.Start != before[len(before)-1].Start || last.Start+last.Size != bigger {
				t.Errorf("data partition %+v: want it to start where it did and end at %d", last, bigger)
			}
			for i := range after[:len(after)-1] {
				if after[i].Type == "f" {
					if after[i].Start+after[i].Size != bigger {
						t.Errorf("extended partition %+v does not reach the end %d", after[i], bigger)
					}
					continue
				}
				if after[i] != before[i] {
					t.Errorf("partition %d changed: %+v, was %+v", i+1, after[i], before[i])
				}
			}
			run(t, nil, "", "sfdisk", "--verify", card.img)

			// The file system, as resize2fs grows the mounted one.
			data := extract(t, card.img, last)
			run(t, nil, "", "resize2fs", data)
			run(t, nil, "", "e2fsck", "-f", "-n", data)
			hdr := run(t, nil, "", "dumpe2fs", "-h", data)
			var blocks, bsize int64
			for _, line := range strings.Split(hdr, "\n") {
				if v, ok := strings.CutPrefix(line, "Block count:"); ok {
					fmt.Sscan(v, &blocks)
				}
				if v, ok := strings.CutPrefix(line, "Block size:"); ok {
					fmt.Sscan(v, &bsize)
				}
			}
			if blocks*bsize != last.Size {
				t.Errorf("file system %d bytes after resize2fs, partition %d", blocks*bsize, last.Size)
			}

			f, _ = os.OpenFile(card.img, os.O_RDWR, 0)
			defer f.Close()
			if _, changed, err := update.GrowPartition(f, bigger, c.data); changed || err != nil {
				t.Errorf("growing again: changed %v, %v", changed, err)
			}
			if _, _, err := update.GrowPartition(f, bigger, 2); err == nil {
				t.Error("grew a partition that is not the last")
			}
		})
	}
}
