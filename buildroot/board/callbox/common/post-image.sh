#!/bin/bash
#
# Buildroot post-image script for callbox images: writes sdcard.img (boot FAT,
# read-only root, data partition) with genimage.
#   post-image.sh BINARIES_DIR BOARD      (BOARD: rpi4, rpizero2w or qemu)
# Buildroot's environment gives BUILD_DIR (genimage's scratch space) and
# TARGET_DIR (the default callbox.toml is copied from there).

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
files=(callbox.toml wpa_supplicant.conf)

case "$BOARD" in
rpi4 | rpizero2w)
	# The GPU firmware loads everything from the FAT partition: its own
	# files, config.txt, cmdline.txt, the device trees and the kernel.
	for f in "$BINARIES"/*.dtb "$BINARIES"/rpi-firmware/*; do
		files+=("${f#"$BINARIES"/}")
	done
	kernel=$(sed -n 's/^kernel=//p' "$BINARIES/rpi-firmware/config.txt")
	if [ -z "$kernel" ] || [ ! -e "$BINARIES/$kernel" ]; then
		echo "post-image.sh: config.txt names no kernel found in $BINARIES" >&2
		exit 1
	fi
	files+=("$kernel")
	;;
qemu)
	# QEMU loads the kernel itself (-kernel); the script shows how.
	install -m 0755 "$COMMON_DIR/../qemu/start-qemu.sh" "$BINARIES/start-qemu.sh"
	;;
*)
	echo "post-image.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

cfg="$BINARIES/genimage.cfg"
while IFS= read -r line; do
	if [ "$line" = "#BOOT_FILES#" ]; then
		printf '\t\t\t"%s",\n' "${files[@]}"
	else
		printf '%s\n' "$line"
	fi
done <"$COMMON_DIR/genimage.cfg.in" >"$cfg"

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
