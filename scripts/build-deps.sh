#!/bin/bash
# build-deps.sh: what `make build` and `make run` need beyond Go and git.
# The microphone driver (drivers/mic, PortAudio) is cgo: it needs a C
# compiler, pkg-config, portaudio19-dev, libopus-dev/libopusfile-dev and libspeexdsp-dev. As root, the missing Debian
# packages are installed; otherwise this says exactly which and how, and
# the build goes on without cgo (the synthetic microphone stands in).
# Prints the CGO_ENABLED value to build with (1 or 0) on stdout; messages
# go to stderr.
set -uo pipefail
PKGS=(${CALLBOX_BUILD_PKGS:-gcc g++ pkg-config portaudio19-dev libasound2-dev libopus-dev libopusfile-dev libspeexdsp-dev})

have_all() {
  command -v cc >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1 &&
    pkg-config --exists portaudio-2.0 opus opusfile speexdsp 2>/dev/null
}

if [ "${CGO_ENABLED:-}" = 0 ]; then
  echo 0
  exit 0
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
elif have_all; then
  echo 1
  exit 0
else
  echo "build-deps: not a Debian system: install a C compiler, pkg-config and the headers of PortAudio (portaudio-2.0) , libopus (opus, opusfile) and speexdsp" >&2
  echo "build-deps: building without cgo (CGO_ENABLED=0): no real microphone, the synthetic one stands in" >&2
  echo 0
  exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo 1
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  echo "build-deps: installing ${missing[*]} (the microphone driver's cgo build)" >&2
  export DEBIAN_FRONTEND=noninteractive
  for i in 1 2 3; do apt-get update -qq >&2 && break; sleep 5; done
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 && have_all; then
    echo 1
    exit 0
  fi
  echo "build-deps: could not install ${missing[*]}" >&2
else
  echo "build-deps: missing Debian packages for the microphone driver (cgo): ${missing[*]}" >&2
  echo "build-deps: install them with:  sudo apt-get install -y ${missing[*]}   (or run make as root)" >&2
fi
echo "build-deps: building without cgo (CGO_ENABLED=0) meanwhile: no real microphone, the synthetic one stands in" >&2
echo 0
