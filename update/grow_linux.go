package update

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blkpg is the BLKPG ioctl, _IO(0x12, 105).
const blkpg = 0x1269

// GrowData grows the data partition device (e.g. /dev/mmcblk0p7) to the
// end of its disk and its ext4 file system to the partition (resize2fs,
// online when it is mounted). Run at every boot: once the partition fills
// the disk it only checks.
func GrowData(device string) (string, error) {
	name := filepath.Base(device)
	sys, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", name))
	if err != nil {
		return "", fmt.Errorf("grow %s: %w", device, err)
	}
	b, err := os.ReadFile(filepath.Join(sys, "partition"))
	if err != nil {
		return "", fmt.Errorf("grow %s: not a partition: %w", device, err)
	}
	number, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("grow %s: partition number: %w", device, err)
	}
	disk := filepath.Join("/dev", filepath.Base(filepath.Dir(sys)))
	f, err := os.OpenFile(disk, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return "", fmt.Errorf("grow %s: %w", device, err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return "", err
	}
	p, changed, err := GrowPartition(f, size, number)
	if err != nil {
		return "", fmt.Errorf("grow %s: %w", device, err)
	}
	var msg []string
	if changed {
		if err := f.Sync(); err != nil {
			return "", err
		}
		msg = append(msg, fmt.Sprintf("partition %d now ends at %d MiB", number, (p.Start+p.Length)>>20))
		// Tell the kernel without re-reading the whole table (the disk
		// is in use: the root file system is on it).
		part := unix.BlkpgPartition{Start: p.Start, Length: p.Length, Pno: int32(number)}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpg, uintptr(unsafe.Pointer(&arg))); errno != 0 {
			return strings.Join(msg, "; "), fmt.Errorf("the kernel keeps the old size until the next boot: BLKPG: %w", errno)
		}
	}
	out, err := exec.Command("resize2fs", device).CombinedOutput()
	if err != nil {
		return strings.Join(msg, "; "), fmt.Errorf("resize2fs %s: %w: %s", device, err, strings.TrimSpace(string(out)))
	}
	if !strings.Contains(string(out), "Nothing to do") {
		msg = append(msg, "file system grown")
	}
	if len(msg) == 0 {
		return "the data partition already fills the card", nil
	}
	return strings.Join(msg, "; "), nil
}
