package update

import (
	"syscall"
	"unsafe"
)

// TrybootReboot restarts the machine at once with the reboot argument
// "0 tryboot": the Raspberry Pi kernel passes it to the firmware, which sets
// its one-shot tryboot flag, so the next boot starts the [tryboot] partition
// of autoboot.txt. (BusyBox's reboot cannot pass an argument; the shutdown
// hook tryboot-reboot calls this after init stopped the services and
// unmounted the file systems.) It returns only on failure.
func TrybootReboot() error {
	syscall.Sync()
	arg, err := syscall.BytePtrFromString("0 tryboot")
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_REBOOT, syscall.LINUX_REBOOT_MAGIC1, syscall.LINUX_REBOOT_MAGIC2,
		syscall.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(arg)), 0, 0)
	return errno
}
