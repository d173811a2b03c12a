#!/bin/sh
#
# Buildroot post-build script for callbox images:
#   post-build.sh TARGET_DIR BOARD      (BOARD: rpi4, rpizero2w or qemu)
# BOARD comes from BR2_ROOTFS_POST_SCRIPT_ARGS in the defconfig.

set -eu

TARGET="${1:?usage: post-build.sh TARGET_DIR BOARD}"
BOARD="${2:?usage: post-build.sh TARGET_DIR BOARD}"

# The SD card's partitions (BOARD/genimage.cfg.in): 1 boot (FAT), then the
# A/B slots, and the data partition last (docs/update.md).
case "$BOARD" in
rpi4 | rpizero2w) PART=/dev/mmcblk0p DATA=7 ;;
qemu) PART=/dev/vda DATA=4 ;;
*)
	echo "post-build.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

mkdir -p "$TARGET/boot" "$TARGET/data"

# Both are mounted by S00callbox-data (noauto): it repairs /data before
# mounting it and recreates it when it cannot. The boot partition stays
# read-only, so pulling the power never leaves its FAT dirty. Post-build
# runs on every `make`: drop the lines a previous run added first.
FSTAB="$TARGET/etc/fstab"
awk '$2 != "/boot" && $2 != "/data"' "$FSTAB" >"$FSTAB.new"
printf '%s1\t/boot\t\tvfat\tro,noauto,nodev,nosuid,noexec\t0\t0\n' "$PART" >>"$FSTAB.new"
printf '%s%s\t/data\t\text4\tnoauto,noatime,nodev,nosuid\t0\t0\n' "$PART" "$DATA" >>"$FSTAB.new"
mv "$FSTAB.new" "$FSTAB"

# Device groups for the callbox user (users.txt): mdev gives new device
# nodes to root only unless a rule says otherwise, and the first matching
# rule wins, so these go first. Post-build runs on every `make`: drop the
# block a previous run added first.
MDEV="$TARGET/etc/mdev.conf"
if [ -e "$MDEV" ]; then
	awk '/^# callbox devices: begin$/ { skip = 1 } !skip { print } /^# callbox devices: end$/ { skip = 0 }' "$MDEV" >"$MDEV.old"
	{
		echo "# callbox devices: begin"
		echo "gpiochip[0-9]+ root:gpio 660"
		echo "video[0-9]+ root:video 660"
		echo "media[0-9]+ root:video 660"
		echo "v4l-subdev[0-9]+ root:video 660"
		echo "(controlC[0-9]+|pcmC[0-9]+D[0-9]+[cp]|timer|seq) root:audio 660 =snd/"
		echo "# callbox devices: end"
		cat "$MDEV.old"
	} >"$MDEV"
	rm -f "$MDEV.old"
fi

# A login on the HDMI console as well as the serial one (Raspberry Pi).
case "$BOARD" in
rpi4 | rpizero2w)
	if [ -e "$TARGET/etc/inittab" ] && ! grep -qE '^tty1::' "$TARGET/etc/inittab"; then
		sed -i '/GENERIC_SERIAL/a\
tty1::respawn:/sbin/getty -L  tty1 0 vt100 # HDMI console' "$TARGET/etc/inittab"
	fi
	;;
esac

# RAUC: system.conf, the signing certificate, the tryboot shutdown step.
sh "$(dirname "$0")/rauc-post-build.sh" "$TARGET" "$BOARD"
