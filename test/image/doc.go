// Package image checks the flashable SD-card image's sources without the
// internet and without Buildroot: the BR2_EXTERNAL tree in buildroot/ is
// linted, its shell scripts pass shellcheck, post-image.sh is run with
// Debian's genimage on stand-in inputs and the resulting card is taken
// apart, the firmware is built for arm64 exactly as Buildroot's Go
// infrastructure builds it, and the overlay's init scripts boot the arm64
// binary in qemu-system-aarch64 from a card laid out like the real one.
//
// The package holds only tests; `make image` (scripts/image.sh) is the
// full Buildroot build, which needs the internet and is not part of
// `make test`. docs/image.md describes both.
package image
