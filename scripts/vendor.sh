#!/bin/bash
# vendor.sh: `go mod vendor`, plus the files cgo links that it leaves out.
#
# go mod vendor copies Go packages only. pion/mediadevices' OpenH264 binding
# (the software H.264 encoder, capture/h264enc) links a static library and
# headers from subdirectories of its package (lib/, include/), which a
# vendored build (Buildroot: -mod=vendor, no module cache) would then lack.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
"$GO" mod vendor
dst=vendor/github.com/pion/mediadevices/pkg/codec/openh264
[ -d "$dst" ] || exit 0 # not vendored: nothing imports it any more
src=$(GOFLAGS=-mod=mod "$GO" list -m -f '{{.Dir}}' github.com/pion/mediadevices)/pkg/codec/openh264
for d in lib include; do
	rm -rf "${dst:?}/$d"
	cp -r "$src/$d" "$dst/$d"
	chmod -R u+w "$dst/$d"
done
