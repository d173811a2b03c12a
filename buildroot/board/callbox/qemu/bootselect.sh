#!/bin/sh
#
# The Raspberry Pi firmware's slot choice, for QEMU (which loads the kernel
# itself and has no such firmware): prints the partition number to boot,
# read from autoboot.txt on the card's FAT partition 1 exactly as the
# firmware reads it ([all] boot_partition normally, [tryboot] boot_partition
# when the one-shot tryboot flag is set). The flag is the file "tryboot" on
# that partition (written by tryboot-reboot at shutdown); like the
# firmware's flag it is cleared *before* the slot starts, so any reset
# during the trial comes back to the committed slot.
#
#   bootselect.sh CARD     CARD: sdcard.img (read with mtools) or a directory
#                          holding the boot partition's files

set -eu
CARD="${1:?usage: bootselect.sh sdcard.img|BOOT_DIR}"

if [ -d "$CARD" ]; then
	read_file() { cat "$CARD/$1" 2>/dev/null; }
	clear_flag() { rm -f "$CARD/tryboot" && sync; }
else
	# The FAT partition starts at the sector sfdisk names for partition 1.
	start=$(sfdisk -d "$CARD" | awk '/start=/ { sub(/.*start= */, ""); sub(/,.*/, ""); print; exit }')
	export MTOOLS_SKIP_CHECK=1
	img="$CARD@@$((start * 512))"
	read_file() { mtype -t -i "$img" "::/$1" 2>/dev/null; }
	clear_flag() { mdel -i "$img" ::/tryboot; }
fi

value() {
	read_file autoboot.txt | tr -d '\r' | awk -v want="[$1]" '
		/^\[/ { in_section = ($0 == want) }
		in_section && /^boot_partition=/ { sub(/^boot_partition=/, ""); print; exit }'
}

committed=$(value all)
if [ -z "$committed" ]; then
	echo "bootselect: no autoboot.txt with [all] boot_partition on $CARD" >&2
	exit 1
fi
if read_file tryboot >/dev/null; then
	try=$(value tryboot)
	clear_flag
	if [ -n "$try" ]; then
		echo "$try"
		exit 0
	fi
fi
echo "$committed"
