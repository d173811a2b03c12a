package image

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/testenv"
)

const (
	mib = 1 << 20
	// The layout genimage.cfg.in promises: what the tests hold it to.
	bootSize = 32 * mib
	// Each Raspberry Pi slot's own boot partition (firmware, kernel).
	slotBootSize = 64 * mib
	dataSize     = 64 * mib
	alignment    = 4 * mib
	dataLabel    = "callbox-data"
)

// card is an SD-card image post-image.sh wrote from stand-in inputs.
type card struct {
	images   string   // BINARIES_DIR: inputs and outputs
	img      string   // sdcard.img
	rootfs   string   // the rootfs.ext4 that went in
	bootWant []string // paths the boot partition (1) must hold
	slotWant []string // paths slot A's boot partition must hold (Raspberry Pi)
}

// cardOptions change the stand-in inputs.
type cardOptions struct {
	config string // content of the target's /etc/callbox/callbox.toml; "" = the example
	rootfs string // the root file system image for slot A; "" = a small stand-in
}

// requireImageTools skips (or fails in CI) without what genimage and the
// checks need.
func requireImageTools(t testing.TB) {
	t.Helper()
	for _, p := range []string{"genimage", "sfdisk", "mke2fs", "mkfs.vfat", "mcopy", "mdir", "mtype", "dumpe2fs", "e2fsck"} {
		testenv.LookPath(t, p)
	}
}

// makeCard builds stand-in Buildroot outputs for board (a fake kernel and
// device tree, the real config.txt and cmdline.txt, the firmware files'
// names, a real small ext4 root file system) and runs post-image.sh on them
// the way Buildroot does.
func makeCard(t testing.TB, board string, opt cardOptions) card {
	t.Helper()
	requireImageTools(t)
	work := t.TempDir()
	images := filepath.Join(work, "images")
	target := filepath.Join(work, "target")
	c := card{images: images, img: filepath.Join(images, "sdcard.img"), rootfs: filepath.Join(images, "rootfs.ext4")}

	config := opt.config
	if config == "" {
		config = readFile(t, exampleConfig(t))
	}
	writeFile(t, filepath.Join(target, "etc", "callbox", "callbox.toml"), config, 0o644)
	c.bootWant = []string{"autoboot.txt", "callbox.toml", "wpa_supplicant.conf"}

	fake := func(name string, size int) {
		b := make([]byte, size)
		rand.Read(b)
		writeFile(t, filepath.Join(images, name), string(b), 0o644)
	}
	rpi := filepath.Join(boardDir(t), "rpi")
	switch board {
	case "rpi4", "rpizero2w":
		firmware := []string{"start4.elf", "fixup4.dat"}
		dtb := "bcm2711-rpi-4-b.dtb"
		if board == "rpizero2w" {
			firmware = []string{"bootcode.bin", "start.elf", "fixup.dat"}
			dtb = "bcm2710-rpi-zero-2-w.dtb"
		}
		for _, f := range firmware {
			fake(filepath.Join("rpi-firmware", f), 64<<10)
		}
		copyFile(t, filepath.Join(rpi, "config_"+board+"_64.txt"), filepath.Join(images, "rpi-firmware", "config.txt"))
		copyFile(t, filepath.Join(rpi, "cmdline.txt"), filepath.Join(images, "rpi-firmware", "cmdline.txt"))
		fake(filepath.Join("rpi-firmware", "overlays", "miniuart-bt.dtbo"), 2<<10)
		fake(dtb, 32<<10)
		fake("Image", 3*mib)
		c.slotWant = append(firmware, "config.txt", "cmdline.txt", "overlays/miniuart-bt.dtbo", dtb, "Image")
		if board == "rpizero2w" {
			// Its boot ROM reads bootcode.bin from partition 1.
			c.bootWant = append(c.bootWant, "bootcode.bin")
		}
	case "qemu":
	default:
		t.Fatalf("no stand-ins for board %q", board)
	}

	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	rootdir := filepath.Join(work, "rootdir")
	writeFile(t, filepath.Join(rootdir, "etc", "hostname"), "callbox\n", 0o644)
	if opt.rootfs != "" {
		copyFile(t, opt.rootfs, c.rootfs)
	} else {
		run(t, nil, "", "mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", rootdir, c.rootfs, "20M")
	}

	build := filepath.Join(work, "build")
	env := append(os.Environ(), "BUILD_DIR="+build, "TARGET_DIR="+target)
	run(t, env, "", "bash", filepath.Join(boardDir(t), "common", "post-image.sh"), images, board)
	return c
}

// partition is one entry of `sfdisk --json`.
type partition struct {
	Start    int64  `json:"start"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`
	Bootable bool   `json:"bootable"`
}

func partitions(t testing.TB, img string) (label string, parts []partition) {
	t.Helper()
	var pt struct {
		PartitionTable struct {
			Label      string      `json:"label"`
			SectorSize int64       `json:"sectorsize"`
			Partitions []partition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, nil, "", "sfdisk", "--json", img)), &pt); err != nil {
		t.Fatal(err)
	}
	ss := pt.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	for _, p := range pt.PartitionTable.Partitions {
		p.Start *= ss
		p.Size *= ss
		parts = append(parts, p)
	}
	return pt.PartitionTable.Label, parts
}

// extract copies a partition's bytes out of the image.
func extract(t testing.TB, img string, p partition) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "part")
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := io.Copy(o, io.NewSectionReader(f, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return out
}

func sha(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mtools on the FAT partition at offset; MTOOLS_SKIP_CHECK because the
// image is not a floppy with a matching geometry.
func mtools(t testing.TB, img string, off int64, tool string, args ...string) string {
	t.Helper()
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	return run(t, env, "", tool, append([]string{"-i", fmt.Sprintf("%s@@%d", img, off)}, args...)...)
}

func TestPostImage(t *testing.T) {
	for _, board := range []string{"rpi4", "rpizero2w", "qemu"} {
		t.Run(board, func(t *testing.T) {
			c := makeCard(t, board, cardOptions{})
			checkCard(t, c, board)
		})
	}
}

// wantAutoboot is the slot choice a new card starts with: slot A
// committed, slot B for a tryboot.
const wantAutoboot = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"

func checkCard(t *testing.T, c card, board string) {
	label, parts := partitions(t, c.img)
	if label != "dos" {
		t.Errorf("partition table %q, want dos (MBR: the Raspberry Pi boot ROM reads only MBR)", label)
	}
	// The layout (docs/update.md): qemu 1 boot, 2/3 root A/B, 4 data;
	// Raspberry Pi 1 boot, 2/3 boot A/B, 4 extended, 5/6 root A/B, 7 data.
	var boot, slotBootA, slotBootB, rootA, rootB, data partition
	switch board {
	case "qemu":
		if len(parts) != 4 {
			t.Fatalf("%d partitions, want 4 (boot, rootfs A, rootfs B, data): %+v", len(parts), parts)
		}
		boot, rootA, rootB, data = parts[0], parts[1], parts[2], parts[3]
	default:
		if len(parts) != 7 {
			t.Fatalf("%d partitions, want 7 (boot, boot A, boot B, extended, rootfs A, rootfs B, data): %+v", len(parts), parts)
		}
		boot, slotBootA, slotBootB, rootA, rootB, data = parts[0], parts[1], parts[2], parts[4], parts[5], parts[6]
		if parts[3].Type != "f" {
			t.Errorf("partition 4 type %s, want f (extended, LBA)", parts[3].Type)
		}
		for _, p := range []partition{slotBootA, slotBootB} {
			if p.Type != "c" || p.Bootable || p.Size != slotBootSize {
				t.Errorf("slot boot partition %+v: want type c, not bootable, %d bytes", p, slotBootSize)
			}
		}
	}
	if boot.Type != "c" || !boot.Bootable {
		t.Errorf("boot partition type %s bootable %v, want c (FAT32 LBA), bootable", boot.Type, boot.Bootable)
	}
	for _, p := range []partition{rootA, rootB, data} {
		if p.Type != "83" || p.Bootable {
			t.Errorf("partition %+v: want type 83, not bootable", p)
		}
	}
	if boot.Size != bootSize || data.Size != dataSize {
		t.Errorf("boot %d bytes, data %d bytes; want %d and %d", boot.Size, data.Size, bootSize, dataSize)
	}
	fi, err := os.Stat(c.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if rootA.Size != fi.Size() || rootB.Size != fi.Size() {
		t.Errorf("rootfs partitions %d and %d bytes, rootfs.ext4 %d", rootA.Size, rootB.Size, fi.Size())
	}
	img, err := os.Stat(c.img)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		if p.Type == "f" {
			continue // the extended partition's table sits before each logical one
		}
		if p.Start%alignment != 0 {
			t.Errorf("partition %d starts at %d, not on a %d MiB boundary", i+1, p.Start, alignment/mib)
		}
		if i > 0 && parts[i-1].Type != "f" && p.Start < parts[i-1].Start+parts[i-1].Size {
			t.Errorf("partition %d overlaps partition %d", i+1, i)
		}
		if p.Start+p.Size > img.Size() {
			t.Errorf("partition %d ends after the image (%d > %d)", i+1, p.Start+p.Size, img.Size())
		}
	}

	// rootfs A: exactly the root file system that went in.
	if sha(t, extract(t, c.img, rootA)) != sha(t, c.rootfs) {
		t.Error("the rootfs A partition differs from rootfs.ext4")
	}

	// data: an empty, clean ext4 with the label S00callbox-data recreates.
	dataPart := extract(t, c.img, data)
	run(t, nil, "", "e2fsck", "-n", "-f", dataPart)
	hdr := run(t, nil, "", "dumpe2fs", "-h", dataPart)
	if !strings.Contains(hdr, "Filesystem volume name:   "+dataLabel+"\n") {
		t.Errorf("data partition is not labelled %s:\n%s", dataLabel, hdr)
	}
	if !strings.Contains(hdr, "has_journal") || !strings.Contains(hdr, "extent") {
		t.Errorf("data partition is not ext4 (journal, extents):\n%s", hdr)
	}

	checkFAT(t, c, c.img, boot.Start, c.bootWant)
	if got := mtools(t, c.img, boot.Start, "mtype", "-t", "::/autoboot.txt"); got != wantAutoboot {
		t.Errorf("autoboot.txt:\n%s\nwant:\n%s", got, wantAutoboot)
	}
	if board == "qemu" {
		for _, f := range []string{"start-qemu.sh", "bootselect.sh"} {
			if fi, err := os.Stat(filepath.Join(c.images, f)); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("post-image.sh did not install an executable %s for the qemu board", f)
			}
		}
		return
	}
	checkFAT(t, c, c.img, slotBootA.Start, c.slotWant)
	cfg := mtools(t, c.img, slotBootA.Start, "mtype", "-t", "::/config.txt")
	if !strings.Contains(cfg, "\narm_64bit=1\n") || !strings.Contains(cfg, "\ndtparam=watchdog=on\n") {
		t.Errorf("config.txt lacks arm_64bit=1 or the watchdog:\n%s", cfg)
	}
	cmdline := mtools(t, c.img, slotBootA.Start, "mtype", "-t", "::/cmdline.txt")
	if !strings.Contains(" "+cmdline+" ", " root=/dev/mmcblk0p5 ") || !strings.Contains(" "+strings.TrimSpace(cmdline)+" ", " ro ") {
		t.Errorf("cmdline.txt does not mount partition 5 (rootfs A) read-only: %q", cmdline)
	}
	// A binary file survives the trip byte for byte.
	out := filepath.Join(t.TempDir(), "Image")
	mtools(t, c.img, slotBootA.Start, "mcopy", "::/Image", out)
	if !bytes.Equal(readBytes(t, out), readBytes(t, filepath.Join(c.images, "Image"))) {
		t.Error("the kernel on the boot partition differs from the one that went in")
	}
}

// checkFAT: the FAT file system at off holds exactly want, and the text
// files among them are the ones that went in.
func checkFAT(t *testing.T, c card, img string, off int64, want []string) {
	t.Helper()
	listing := mtools(t, img, off, "mdir", "-/", "-b", "::/")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		if p := strings.TrimPrefix(strings.TrimSpace(line), "::/"); p != "" && !strings.HasSuffix(p, "/") {
			got = append(got, p)
		}
	}
	want = slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FAT partition at %d holds %v, want %v", off, got, want)
	}
	for _, f := range want {
		content := mtools(t, img, off, "mtype", "-t", "::/"+f)
		var src string
		switch f {
		case "callbox.toml":
			src = filepath.Join(c.images, "callbox.toml")
			if content != readFile(t, targetConfig(t, c)) {
				t.Error("boot callbox.toml is not the image's default configuration")
			}
		case "wpa_supplicant.conf":
			src = filepath.Join(boardDir(t), "common", "wpa_supplicant.conf")
		case "config.txt", "cmdline.txt":
			src = filepath.Join(c.images, "rpi-firmware", f)
		default:
			continue // binary stand-ins: mtype -t would mangle them; listed above
		}
		if content != readFile(t, src) {
			t.Errorf("%s differs from %s", f, src)
		}
	}
}

// targetConfig is the stand-in target's /etc/callbox/callbox.toml, which
// post-image.sh puts on the boot partition.
func targetConfig(t testing.TB, c card) string {
	return filepath.Join(filepath.Dir(c.images), "target", "etc", "callbox", "callbox.toml")
}

func readBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
