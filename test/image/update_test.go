package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/testenv"
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
	if n := strings.Count(readFile(t, filepath.Join(target, "etc", "inittab")), "::shutdown:/usr/libexec/callbox/tryboot-reboot\n"); n != 1 {
		t.Errorf("inittab has %d tryboot-reboot shutdown steps, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(target, "etc", "rauc")); err != nil {
		t.Error(err)
	}
}
