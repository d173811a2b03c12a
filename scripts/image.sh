#!/bin/bash
# image.sh: builds callbox's flashable SD-card image with Buildroot and the
# external tree in buildroot/.
#
#   scripts/image.sh BOARD          (BOARD: rpi4, rpizero2w or qemu)
#   make image BOARD=rpi4           (the same)
#
# Needs the internet: it downloads the pinned Buildroot release (checked
# against its sha256), and Buildroot downloads the toolchain, kernel,
# firmware and packages (each checked against Buildroot's hashes). Everything
# is cached in CALLBOX_IMAGE_CACHE (default ~/.cache/callbox-image), so a
# second build is incremental. The image is
# $CALLBOX_IMAGE_CACHE/output/BOARD/images/sdcard.img, and the signed update
# bundle callbox-BOARD.raucb next to it (make bundle).
set -euo pipefail

# 2026.02.x is Buildroot's long-term release line. The sha256 is the one the
# release's PGP-signed buildroot-2026.02.3.tar.xz.sign lists.
BR_VERSION=2026.02.3
BR_SHA256=5a59e7501b0b4ec52c41f4bfa79412320e0b37eae5f719605a258e8d0c6fc7fb
BR_URL="https://buildroot.org/downloads/buildroot-$BR_VERSION.tar.xz"
# The Go that release builds with (its package/go/go.mk GO_VERSION). Buildroot
# runs Go with GOTOOLCHAIN=local, so go.mod's go line must not be newer.
BR_GO_VERSION=1.26.3

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BOARD="${1:-${BOARD:-}}"
case "$BOARD" in
rpi4) DEFCONFIG=callbox_rpi4_64_defconfig ;;
rpizero2w) DEFCONFIG=callbox_rpizero2w_64_defconfig ;;
qemu) DEFCONFIG=callbox_qemu_aarch64_virt_defconfig ;;
*)
	echo "usage: $0 rpi4|rpizero2w|qemu" >&2
	exit 2
	;;
esac

CACHE="${CALLBOX_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callbox-image}"
OUT="$CACHE/output/$BOARD"
SRC="$CACHE/buildroot-$BR_VERSION"
TARBALL="$CACHE/buildroot-$BR_VERSION.tar.xz"
mkdir -p "$CACHE/dl" "$OUT"

gomod_go=$(awk '$1 == "go" { print $2; exit }' "$ROOT/go.mod")
if ! printf '%s\n%s\n' "$gomod_go" "$BR_GO_VERSION" | sort -V -C; then
	echo "image: go.mod says 'go $gomod_go' but Buildroot $BR_VERSION builds with Go $BR_GO_VERSION;" >&2
	echo "image: lower go.mod's go line (the language version, e.g. 'go 1.26.0') or move to a newer Buildroot" >&2
	exit 1
fi

if [ ! -d "$SRC" ]; then
	if [ ! -f "$TARBALL" ]; then
		echo "image: downloading $BR_URL"
		curl -fL --retry 3 -o "$TARBALL.part" "$BR_URL"
		mv "$TARBALL.part" "$TARBALL"
	fi
	if ! echo "$BR_SHA256  $TARBALL" | sha256sum -c --quiet -; then
		echo "image: $TARBALL does not match the pinned sha256; removed it" >&2
		rm -f "$TARBALL"
		exit 1
	fi
	# Unpack next to the final place and rename, so an interrupted
	# unpack is never mistaken for a complete tree.
	tmp="$(mktemp -d "$CACHE/unpack.XXXXXX")"
	tar -C "$tmp" -xf "$TARBALL"
	mv "$tmp/buildroot-$BR_VERSION" "$SRC"
	rmdir "$tmp"
fi

# Buildroot builds Go packages with -mod=vendor and never vendors a local
# source tree itself (docs/image.md). A vendor/ this script made goes again
# afterwards: while it exists, go commands in the tree use it instead of the
# module cache, which surprises whoever adds a dependency next.
if [ ! -e "$ROOT/vendor" ]; then
	trap 'rm -rf "$ROOT/vendor"' EXIT
fi
make -C "$ROOT" vendor

# Update bundles are signed with CALLBOX_RAUC_KEY; the image carries only
# CALLBOX_RAUC_CERT (docs/update.md). Without them, a development pair is
# made once in the cache: boxes flashed with such an image accept only
# bundles signed by this machine.
if [ -z "${CALLBOX_RAUC_KEY:-}" ] || [ -z "${CALLBOX_RAUC_CERT:-}" ]; then
	CALLBOX_RAUC_KEY="$CACHE/keys/development.key.pem"
	CALLBOX_RAUC_CERT="$CACHE/keys/development.cert.pem"
	if [ ! -f "$CALLBOX_RAUC_KEY" ] || [ ! -f "$CALLBOX_RAUC_CERT" ]; then
		echo "image: no CALLBOX_RAUC_KEY/CALLBOX_RAUC_CERT; making a development signing pair in $CACHE/keys" >&2
		mkdir -p "$CACHE/keys"
		(umask 077 && openssl req -x509 -newkey rsa:4096 -nodes -days 3650 \
			-subj "/O=callbox/CN=callbox development updates" \
			-keyout "$CALLBOX_RAUC_KEY" -out "$CALLBOX_RAUC_CERT" 2>/dev/null)
	fi
	echo "image: signing updates with the DEVELOPMENT key $CALLBOX_RAUC_KEY" >&2
fi
export CALLBOX_RAUC_KEY CALLBOX_RAUC_CERT
export CALLBOX_VERSION="${CALLBOX_VERSION:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || date -u +%Y%m%d%H%M%S)}"

export BR2_DL_DIR="$CACHE/dl"
make -C "$SRC" O="$OUT" BR2_EXTERNAL="$ROOT/buildroot" "$DEFCONFIG"
make -C "$SRC" O="$OUT"

echo "image: $OUT/images/sdcard.img"
echo "image: update bundle $OUT/images/callbox-$BOARD.raucb"
if [ "$BOARD" = qemu ]; then
	echo "image: boot it with $OUT/images/start-qemu.sh; the page is on http://127.0.0.1:8080/"
fi
