#!/bin/sh
#
# Boots the callbox QEMU image (run it from anywhere); the page appears on
# http://127.0.0.1:${PORT:-8080}/ and the console in this terminal.
# Extra arguments go to qemu-system-aarch64. Quit with Ctrl-A X, then Ctrl-C.
#
# The card has two root file systems (A = partition 2, B = 3). QEMU loads
# the kernel itself, so this script plays the Raspberry Pi firmware's part:
# before every boot bootselect.sh picks the slot from autoboot.txt (and the
# one-shot tryboot flag), and qemu runs with -no-reboot so that a reboot
# (or a watchdog reset) comes back here for the next choice.

cd "$(dirname "$0")" || exit 1
while :; do
	slot=$(sh ./bootselect.sh sdcard.img) || exit 1
	echo "start-qemu: booting partition $slot"
	qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -nographic -no-reboot \
		-kernel Image -append "root=/dev/vda$slot rauc.slot=$slot rootwait ro console=ttyAMA0" \
		-drive file=sdcard.img,if=none,format=raw,id=hd0 \
		-device virtio-blk-device,drive=hd0 \
		-netdev "user,id=eth0,hostfwd=tcp:127.0.0.1:${PORT:-8080}-:8080" \
		-device virtio-net-device,netdev=eth0 \
		-device i6300esb \
		"$@" || exit $?
	sleep 1
done
