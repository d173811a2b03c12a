#!/bin/bash
# install-deps.sh: installs the Debian packages the test suite needs (as root).
# Idempotent and quiet when everything is already present. A mirror that is
# mid-sync can make `apt-get update` fail for one architecture; the indexes
# that did load are enough, so that failure is not fatal.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  # build and cgo (PortAudio for the microphone driver)
  gcc make pkg-config portaudio19-dev libasound2-dev
  # Opus audio for WebRTC (capture/opus: libopus through gopkg.in/hraban/opus.v2,
  # whose package also links libopusfile)
  libopus-dev libopusfile-dev
  # echo cancellation for the box's speaker (capture/echo: speexdsp through cgo)
  libspeexdsp-dev
  # cross builds and unit tests under qemu-user
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross portaudio19-dev:arm64
  libopus-dev:arm64 libopusfile-dev:arm64 libspeexdsp-dev:arm64
  qemu-user
  # interop: clients nobody here wrote
  ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
  # the phone page in a real browser
  chromium chromium-driver
  # ... and in WebKit, the engine of iOS Safari (test/browser/webkit_test.go)
  webkit2gtk-driver xvfb
  # HIL virtual machines
  qemu-system-x86 qemu-system-arm cpio gzip kmod curl bc linux-kbuild-6.1 busybox-static xz-utils libasound2-data
  # NAT lab and slow links
  iproute2 iptables conntrack iputils-ping coturn
  # the hub's store contract on a real PostgreSQL, and hub instances over a real NATS
  postgresql nats-server
  # outputs: Home Assistant MQTT discovery tests run a real broker
  mosquitto
  # SD-card image checks
  shellcheck genimage mtools dosfstools e2fsprogs fdisk
  # RAUC update bundles and installs (test/image/update_test.go)
  rauc squashfs-tools dbus openssl
)
# Node.js and npm drive Chromium (playwright-core); many machines already have
# them from elsewhere, and Debian's npm conflicts with those, so only install
# Debian's when there is none.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
ARMHF=(gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross portaudio19-dev:armhf libopus-dev:armhf libopusfile-dev:armhf libspeexdsp-dev:armhf)
armhf_missing=()
for p in "${ARMHF[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || armhf_missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ ${#armhf_missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]} ${armhf_missing[*]}"
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
dpkg --print-foreign-architectures | grep -qx armhf || dpkg --add-architecture armhf
for i in 1 2 3; do apt-get update -qq && break; sleep 5; done || true
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The armv7 cgo toolchain is optional: without it `make cross` builds armv7
# with CGO_ENABLED=0 (no microphone) and says so.
if [ ${#armhf_missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${armhf_missing[@]}" >/dev/null ||
    echo "install-deps: WARNING: armhf cross packages not installable now (mirror mid-sync?); armv7 builds fall back to CGO_ENABLED=0" >&2
fi
