#!/bin/bash
#
# Buildroot post-image script for callbox images: writes sdcard.img (the FAT
# partition with autoboot.txt, the A/B slots, the data partition) with
# genimage, and the signed update bundle callbox-BOARD.raucb next to it.
#   post-image.sh BINARIES_DIR BOARD      (BOARD: rpi4, rpizero2w or qemu)
# Buildroot's environment gives BUILD_DIR (genimage's scratch space) and
# TARGET_DIR (the default callbox.toml is copied from there); the bundle is
# signed with CALLBOX_RAUC_KEY and CALLBOX_RAUC_CERT (scripts/image.sh sets
# them; without them no bundle is made).

set -euo pipefail
shopt -s nullglob

COMMON_DIR="$(cd "$(dirname "$0")" && pwd)"
BINARIES="${1:?usage: post-image.sh BINARIES_DIR BOARD}"
BOARD="${2:?usage: post-image.sh BINARIES_DIR BOARD}"
: "${BUILD_DIR:?BUILD_DIR must be set (Buildroot sets it)}"
: "${TARGET_DIR:?TARGET_DIR must be set (Buildroot sets it)}"

# What a person edits on the card: the image's default configuration and a
# Wi-Fi template. S00callbox-data imports both at boot.
install -m 0644 "$TARGET_DIR/etc/callbox/callbox.toml" "$BINARIES/callbox.toml"
install -m 0644 "$COMMON_DIR/wpa_supplicant.conf" "$BINARIES/wpa_supplicant.conf"
# The firmware's slot choice (rauc-backend rewrites it): slot A (partition
# 2) is committed; a tryboot reboot starts slot B (partition 3).
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' >"$BINARIES/autoboot.txt"
files=(autoboot.txt callbox.toml wpa_supplicant.conf)
slot_files=()

case "$BOARD" in
rpi4 | rpizero2w)
	# The GPU firmware loads everything from the slot's boot partition:
	# its own files, config.txt, cmdline.txt, the device trees and the
	# kernel. The Zero 2 W's boot ROM reads bootcode.bin from partition 1.
	for f in "$BINARIES"/*.dtb "$BINARIES"/rpi-firmware/*; do
		slot_files+=("${f#"$BINARIES"/}")
	done
	if [ -e "$BINARIES/rpi-firmware/bootcode.bin" ]; then
		files+=(rpi-firmware/bootcode.bin)
	fi
	kernel=$(sed -n 's/^kernel=//p' "$BINARIES/rpi-firmware/config.txt")
	if [ -z "$kernel" ] || [ ! -e "$BINARIES/$kernel" ]; then
		echo "post-image.sh: config.txt names no kernel found in $BINARIES" >&2
		exit 1
	fi
	slot_files+=("$kernel")
	layout="$COMMON_DIR/../rpi/genimage.cfg.in"
	;;
qemu)
	# QEMU loads the kernel itself (-kernel); the script shows how.
	install -m 0755 "$COMMON_DIR/../qemu/start-qemu.sh" "$BINARIES/start-qemu.sh"
	install -m 0755 "$COMMON_DIR/../qemu/bootselect.sh" "$BINARIES/bootselect.sh"
	layout="$COMMON_DIR/../qemu/genimage.cfg.in"
	;;
*)
	echo "post-image.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

# Slot B gets the size of slot A's root file system.
rootfs_size=$(stat -c %s "$BINARIES/rootfs.ext4")
cfg="$BINARIES/genimage.cfg"
while IFS= read -r line; do
	case "$line" in
	"#BOOT_FILES#") printf '\t\t\t"%s",\n' "${files[@]}" ;;
	"#SLOT_FILES#") printf '\t\t\t"%s",\n' "${slot_files[@]}" ;;
	*"#ROOTFS_SIZE#"*) printf '%s\n' "${line/\#ROOTFS_SIZE\#/$rootfs_size}" ;;
	*) printf '%s\n' "$line" ;;
	esac
done <"$layout" >"$cfg"

# An empty root path: genimage copies it whole, and the root file system is
# already built (rootfs.ext4); only data.ext4 is made from it, empty.
rootpath="$(mktemp -d)"
trap 'rm -rf "$rootpath"' EXIT
rm -rf "$BUILD_DIR/genimage.tmp"
genimage \
	--rootpath "$rootpath" \
	--tmppath "$BUILD_DIR/genimage.tmp" \
	--inputpath "$BINARIES" \
	--outputpath "$BINARIES" \
	--config "$cfg"

# bmaptool writes only the blocks that hold data: much faster to flash.
if command -v bmaptool >/dev/null 2>&1; then
	bmaptool create -o "$BINARIES/sdcard.img.bmap" "$BINARIES/sdcard.img"
fi

# The update bundle: the same slot images, signed.
if [ -n "${CALLBOX_RAUC_KEY:-}" ]; then
	bash "$COMMON_DIR/make-bundle.sh" "$BINARIES" "$BOARD"
else
	echo "post-image.sh: CALLBOX_RAUC_KEY not set; no update bundle made" >&2
fi
