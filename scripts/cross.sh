#!/bin/bash
# cross.sh: cross builds for the boards and unit tests under qemu-user.
#
#   bash scripts/cross.sh build   bin/callbox-arm64 (linux/arm64, cgo) and
#                                 bin/callbox-armv7 (linux/arm GOARM=7, cgo)
#   bash scripts/cross.sh test    go test -short ./... for arm64 and armv7,
#                                 each test binary run under qemu-user
#   (test takes package patterns after the verb; ARMV7_CGO=0 forces the
#   armv7 CGO_ENABLED=0 fallback)
#
# cgo links the multiarch libportaudio (portaudio19-dev:arm64 / :armhf)
# libopus/libopusfile and speexdsp (libopus-dev, libopusfile-dev, libspeexdsp-dev :arm64 / :armhf) with
# Debian's cross compilers; PKG_CONFIG=<triplet>-pkg-config finds it. The
# software H.264 encoder (capture/h264enc: OpenH264 through
# pion/mediadevices, which carries the static library for both targets)
# has a C++ bridge, hence CXX=<triplet>-g++. When
# the armhf toolchain or portaudio19-dev:armhf is missing (the armhf mirror
# is sometimes mid-sync), armv7 is built with CGO_ENABLED=0, which has no
# microphone, and this script says so loudly. arm64 has no fallback: it is
# the main target, and `make deps` installs what it needs.
#
# qemu-user runs without -L: with -L /usr/<triplet> the loader comes from
# libc6-*-cross while libportaudio's dependencies resolve the multiarch
# libc through ld.so.cache, and the mismatched pair hangs at 100% CPU.
# qemu-user also ignores timeout's SIGTERM when the guest hangs, hence -k.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -X github.com/callbox/callbox/firmware.Version=$VERSION"
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

die() { echo "cross: $*" >&2; exit 1; }
loud() { printf '\n*** cross: %s ***\n\n' "$*" >&2; }

# env_for ARCH: prints the environment for a cgo cross build, or nothing
# when the toolchain is not there.
have_cgo() { # triplet
  command -v "$1-gcc" >/dev/null 2>&1 && command -v "$1-g++" >/dev/null 2>&1 &&
    command -v "$1-pkg-config" >/dev/null 2>&1 &&
    "$1-pkg-config" --exists portaudio-2.0 opus opusfile speexdsp 2>/dev/null
}

setup() { # arch -> sets ENVS, QEMU, LABEL
  case $1 in
    arm64)
      have_cgo aarch64-linux-gnu ||
        die "arm64 cgo toolchain missing (gcc/g++-aarch64-linux-gnu, portaudio19-dev:arm64, libopus-dev:arm64, libopusfile-dev:arm64, libspeexdsp-dev:arm64): run 'make deps' as root"
      ENVS=(GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ PKG_CONFIG=aarch64-linux-gnu-pkg-config)
      QEMU=qemu-aarch64 ;;
    armv7)
      # ARMV7_CGO=0 forces the pure-Go build (what a machine without the
      # armhf packages gets).
      if [ "${ARMV7_CGO:-auto}" != 0 ] && have_cgo arm-linux-gnueabihf; then
        ENVS=(GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=1 CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ PKG_CONFIG=arm-linux-gnueabihf-pkg-config)
      else
        why="arm-linux-gnueabihf-gcc/g++ portaudio19-dev:armhf, libopus(file)-dev:armhf or libspeexdsp-dev:armhf missing"
        [ "${ARMV7_CGO:-auto}" = 0 ] && why="ARMV7_CGO=0"
        loud "armv7: $why; building with CGO_ENABLED=0: NO MICROPHONE, NO SPEAKER, NO ECHO CANCELLATION, NO SOFTWARE H.264 ENCODER and NO OPUS in bin/callbox-armv7"
        ENVS=(GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0)
      fi
      QEMU=qemu-arm ;;
    *) die "unknown arch $1" ;;
  esac
}

build() {
  mkdir -p bin
  for a in arm64 armv7; do
    setup $a
    local t0=$SECONDS
    env "${ENVS[@]}" "$GO" build -trimpath -ldflags "$LDFLAGS" -o bin/callbox-$a ./cmd/callbox
    printf 'cross: bin/callbox-%s  %s bytes (%.1f MB)  %s  built in %ds\n' $a \
      "$(stat -c %s bin/callbox-$a)" "$(echo "$(stat -c %s bin/callbox-$a) / 1048576" | bc -l)" \
      "$(echo "${ENVS[*]}" | grep -o 'CGO_ENABLED=.')" $((SECONDS - t0))
  done
  local sz; sz=$(stat -c %s bin/callbox-arm64)
  [ "$sz" -lt $((20 * 1024 * 1024)) ] || loud "bin/callbox-arm64 is $sz bytes: over the 20 MB goal"
}

test_cross() {
  local rc=0
  for a in arm64 armv7; do
    setup $a
    command -v $QEMU >/dev/null 2>&1 || die "$QEMU missing (qemu-user): run 'make deps' as root"
    local t0=$SECONDS
    echo "cross: go test -short ./... for $a under $QEMU"
    # A test that re-executes its own binary (os.Args[0]) cannot exec a
    # foreign ELF without binfmt_misc, which we do not register (it is
    # host-wide state); CALLBOX_TEST_EXEC names the emulator to run it with.
    env "${ENVS[@]}" CALLBOX_TEST_EXEC="$QEMU" "$GO" test -short -count=1 -timeout 20m \
      -exec "timeout -k 5 $TEST_TIMEOUT $QEMU" "${PKGS[@]:-./...}" || rc=1
    echo "cross: $a tests finished in $((SECONDS - t0))s (rc so far $rc)"
  done
  return $rc
}

PKGS=("${@:2}")
case ${1:-} in
  build) build ;;
  test) test_cross ;;
  *) die "usage: $0 build|test [packages]" ;;
esac
