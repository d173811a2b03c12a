#!/bin/sh
#
# Boots the callbox QEMU image (run it from anywhere); the page appears on
# http://127.0.0.1:${PORT:-8080}/ and the console in this terminal.
# Extra arguments go to qemu-system-aarch64. Quit with Ctrl-A X.

cd "$(dirname "$0")" || exit 1
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -nographic \
	-kernel Image -append "root=/dev/vda2 rootwait ro console=ttyAMA0" \
	-drive file=sdcard.img,if=none,format=raw,id=hd0 \
	-device virtio-blk-device,drive=hd0 \
	-netdev "user,id=eth0,hostfwd=tcp:127.0.0.1:${PORT:-8080}-:8080" \
	-device virtio-net-device,netdev=eth0 \
	-device i6300esb \
	"$@"
