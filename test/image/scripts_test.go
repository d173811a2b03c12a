package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/testenv"
)

// boardScripts lists the shell scripts of the external tree (every file with
// a #!/bin/sh or #!/bin/bash line) plus scripts/image.sh.
func boardScripts(t testing.TB) []string {
	t.Helper()
	var scripts []string
	err := filepath.Walk(externalTree(t), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if first, _, _ := strings.Cut(string(b), "\n"); first == "#!/bin/sh" || first == "#!/bin/bash" {
			scripts = append(scripts, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(scripts, filepath.Join(repoRoot(t), "scripts", "image.sh"))
}

func TestShellcheck(t *testing.T) {
	sc := testenv.LookPath(t, "shellcheck")
	scripts := boardScripts(t)
	// The init scripts, post scripts, health check and QEMU launcher: a
	// tree that lost them would pass shellcheck vacuously.
	for _, want := range []string{"S00callbox-data", "S41callbox-net", "S98watchdog", "S99callbox",
		"healthcheck", "post-build.sh", "post-image.sh", "start-qemu.sh", "image.sh"} {
		found := false
		for _, s := range scripts {
			found = found || filepath.Base(s) == want
		}
		if !found {
			t.Errorf("no script %s in the external tree", want)
		}
	}
	for _, s := range scripts {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
	out, err := exec.Command(sc, append([]string{"--external-sources"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// skeletonFstab and skeletonInittab are the parts of Buildroot's
// skeleton-init-sysv and BusyBox files that post-build.sh edits.
const skeletonFstab = `# <file system>	<mount pt>	<type>	<options>	<dump>	<pass>
/dev/root	/		ext2	rw,noauto	0	1
proc		/proc		proc	defaults	0	0
tmpfs		/tmp		tmpfs	mode=1777	0	0
`

const skeletonInittab = `::sysinit:/etc/init.d/rcS
# Put a getty on the serial port
console::respawn:/sbin/getty -L  console 0 vt100 # GENERIC_SERIAL
::shutdown:/etc/init.d/rcK
::shutdown:/sbin/swapoff -a
::shutdown:/bin/umount -a -r
`

// TestPostBuild runs post-build.sh twice (Buildroot runs it on every make)
// on a stand-in target and checks the mounts it adds for each board.
// skeletonMdev stands in for the mdev.conf BusyBox installs.
const skeletonMdev = "null root:root 666\n$MODALIAS=.* root:root 660 @modprobe \"$MODALIAS\"\n"

func TestPostBuild(t *testing.T) {
	script := filepath.Join(boardDir(t), "common", "post-build.sh")
	_, cert := signingPair(t, t.TempDir(), "callbox post-build test")
	env := append(os.Environ(), "CALLBOX_RAUC_CERT="+cert)
	for _, c := range []struct{ board, part, data string }{
		{"rpi4", "/dev/mmcblk0p", "7"}, {"rpizero2w", "/dev/mmcblk0p", "7"}, {"qemu", "/dev/vda", "4"},
	} {
		t.Run(c.board, func(t *testing.T) {
			target := t.TempDir()
			writeFile(t, filepath.Join(target, "etc", "fstab"), skeletonFstab, 0o644)
			writeFile(t, filepath.Join(target, "etc", "inittab"), skeletonInittab, 0o644)
			writeFile(t, filepath.Join(target, "etc", "mdev.conf"), skeletonMdev, 0o644)
			run(t, env, "", "sh", script, target, c.board)
			run(t, env, "", "sh", script, target, c.board)
			// The callbox user's device groups, once, ahead of the
			// skeleton's rules (mdev takes the first match).
			mdev := readFile(t, filepath.Join(target, "etc", "mdev.conf"))
			if strings.Count(mdev, "# callbox devices: begin") != 1 || !strings.HasPrefix(mdev, "# callbox devices: begin\ngpiochip[0-9]+ root:gpio 660\n") ||
				!strings.HasSuffix(mdev, skeletonMdev) || !strings.Contains(mdev, "video[0-9]+ root:video 660") || !strings.Contains(mdev, "root:audio 660 =snd/") {
				t.Errorf("mdev.conf after post-build.sh:\n%s", mdev)
			}
			mounts := map[string][]string{}
			for _, line := range strings.Split(readFile(t, filepath.Join(target, "etc", "fstab")), "\n") {
				if f := strings.Fields(line); len(f) == 6 && !strings.HasPrefix(f[0], "#") {
					if _, dup := mounts[f[1]]; dup {
						t.Errorf("fstab mounts %s twice", f[1])
					}
					mounts[f[1]] = f
				}
			}
			if b := mounts["/boot"]; b == nil || b[0] != c.part+"1" || b[2] != "vfat" || !strings.Contains(","+b[3]+",", ",ro,") {
				t.Errorf("/boot line %v: want %s1, vfat, read-only", b, c.part)
			}
			if d := mounts["/data"]; d == nil || d[0] != c.part+c.data || d[2] != "ext4" {
				t.Errorf("/data line %v: want %s%s, ext4", d, c.part, c.data)
			}
			checkRAUCTarget(t, target, c.board, cert)
			if mounts["/proc"] == nil || mounts["/"] == nil {
				t.Errorf("post-build.sh lost the skeleton's mounts: %v", mounts)
			}
			for _, dir := range []string{"boot", "data"} {
				if fi, err := os.Stat(filepath.Join(target, dir)); err != nil || !fi.IsDir() {
					t.Errorf("no mount point /%s in the target", dir)
				}
			}
			tty1 := strings.Count(readFile(t, filepath.Join(target, "etc", "inittab")), "\ntty1::respawn:")
			if want := map[bool]int{true: 1, false: 0}[c.board != "qemu"]; tty1 != want {
				t.Errorf("inittab has %d tty1 gettys, want %d", tty1, want)
			}
		})
	}
	noCert := t.TempDir()
	writeFile(t, filepath.Join(noCert, "etc", "fstab"), skeletonFstab, 0o644)
	if out, err := exec.Command("sh", script, noCert, "qemu").CombinedOutput(); err == nil || !strings.Contains(string(out), "CALLBOX_RAUC_CERT") {
		t.Errorf("post-build.sh without a signing certificate: %v %s", err, out)
	}
	if err := exec.Command("sh", script, t.TempDir(), "rpi5").Run(); err == nil {
		t.Error("post-build.sh accepted an unknown board")
	}
}
