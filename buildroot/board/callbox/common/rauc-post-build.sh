#!/bin/sh
#
# The update pieces of the root file system (called by post-build.sh):
#   rauc-post-build.sh TARGET_DIR BOARD
# RAUC's system.conf for the board, the certificate bundles must be signed
# with (from CALLBOX_RAUC_CERT: the device keeps only the certificate, never
# the key), the board's tryboot method, and the shutdown step that reboots
# into a freshly installed slot for its trial.

set -eu

TARGET="${1:?usage: rauc-post-build.sh TARGET_DIR BOARD}"
BOARD="${2:?usage: rauc-post-build.sh TARGET_DIR BOARD}"
BOARD_DIR="$(cd "$(dirname "$0")/.." && pwd)"

case "$BOARD" in
rpi4 | rpizero2w) CONF="$BOARD_DIR/rpi/rauc-system.conf" METHOD=firmware ;;
qemu) CONF="$BOARD_DIR/qemu/rauc-system.conf" METHOD=flag ;;
*)
	echo "rauc-post-build.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

if [ -z "${CALLBOX_RAUC_CERT:-}" ] || [ ! -r "$CALLBOX_RAUC_CERT" ]; then
	echo "rauc-post-build.sh: set CALLBOX_RAUC_CERT to the update signing certificate (scripts/image.sh does)" >&2
	exit 1
fi

mkdir -p "$TARGET/etc/rauc" "$TARGET/etc/default"
# Bundles name the board they are for; RAUC refuses another board's.
sed "s/@COMPATIBLE@/callbox-$BOARD/" "$CONF" >"$TARGET/etc/rauc/system.conf"
install -m 0644 "$CALLBOX_RAUC_CERT" "$TARGET/etc/rauc/keyring.pem"
printf 'TRYBOOT_METHOD=%s\n' "$METHOD" >"$TARGET/etc/default/callbox-update"

# After rcK (services stopped, /data unmounted), before `umount -a -r`
# (which takes /run, where the request is).
INITTAB="$TARGET/etc/inittab"
if [ -e "$INITTAB" ] && ! grep -q tryboot-reboot "$INITTAB"; then
	if grep -q '^::shutdown:.*umount -a' "$INITTAB"; then
		sed -i '/^::shutdown:.*umount -a/i ::shutdown:/usr/libexec/callbox/tryboot-reboot' "$INITTAB"
	else
		echo '::shutdown:/usr/libexec/callbox/tryboot-reboot' >>"$INITTAB"
	fi
fi
