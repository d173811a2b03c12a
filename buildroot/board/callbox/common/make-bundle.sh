#!/bin/bash
#
# Writes the signed RAUC update bundle for a board from the images a build
# left in BINARIES_DIR (called by post-image.sh, and by the tests):
#   make-bundle.sh BINARIES_DIR BOARD     ->  BINARIES_DIR/callbox-BOARD.raucb
# CALLBOX_RAUC_KEY and CALLBOX_RAUC_CERT sign it (the key never goes on the
# device); CALLBOX_VERSION names the version (default: the build's date).
# Uses Buildroot's host rauc when HOST_DIR has one, else rauc from PATH.
# CALLBOX_BUNDLE_FORMAT=plain is for tests on hosts without device-mapper
# (the boxes accept verity bundles only: system.conf's bundle-formats).

set -euo pipefail

BINARIES="${1:?usage: make-bundle.sh BINARIES_DIR BOARD}"
BOARD="${2:?usage: make-bundle.sh BINARIES_DIR BOARD}"
: "${CALLBOX_RAUC_KEY:?set CALLBOX_RAUC_KEY to the signing key}"
: "${CALLBOX_RAUC_CERT:?set CALLBOX_RAUC_CERT to the signing certificate}"
VERSION="${CALLBOX_VERSION:-$(date -u +%Y%m%d%H%M%S)}"

RAUC=rauc
if [ -n "${HOST_DIR:-}" ] && [ -x "$HOST_DIR/bin/rauc" ]; then
	RAUC="$HOST_DIR/bin/rauc"
fi

case "$BOARD" in
rpi4 | rpizero2w) images=(rootfs:rootfs.ext4 boot:slot-boot.vfat) ;;
qemu) images=(rootfs:rootfs.ext4) ;;
*)
	echo "make-bundle.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
{
	printf '[update]\ncompatible=callbox-%s\nversion=%s\n\n' "$BOARD" "$VERSION"
	# verity: the device checks every block as it reads it, and the
	# signature covers the whole bundle before anything is written.
	printf '[bundle]\nformat=%s\n' "${CALLBOX_BUNDLE_FORMAT:-verity}"
	for i in "${images[@]}"; do
		class="${i%%:*}" file="${i#*:}"
		if [ ! -e "$BINARIES/$file" ]; then
			echo "make-bundle.sh: no $file in $BINARIES" >&2
			exit 1
		fi
		# Hard links: the images are hundreds of MB.
		ln "$BINARIES/$file" "$work/content/$file" 2>/dev/null || cp "$BINARIES/$file" "$work/content/$file"
		printf '\n[image.%s]\nfilename=%s\n' "$class" "$file"
	done
} >"$work/content/manifest.raucm"

out="$BINARIES/callbox-$BOARD.raucb"
rm -f "$out"
"$RAUC" bundle --cert="$CALLBOX_RAUC_CERT" --key="$CALLBOX_RAUC_KEY" "$work/content" "$out"
echo "make-bundle.sh: $out (version $VERSION)"
