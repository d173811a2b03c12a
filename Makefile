# callbox: build, run, test, cross-compile, bench, image.
GO      ?= go
BIN     := bin/callbox
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/callbox/callbox/firmware.Version=$(VERSION)
HTTP    ?= 127.0.0.1:8080

.PHONY: all build run deps test test-unit test-cross cross bench bench-relay bench-rtsp bench-webrtc fuzz image bundle vendor clean config-docs
all: build

# The build needs Go and git, plus a C compiler and PortAudio for the
# microphone driver (cgo): scripts/build-deps.sh installs them as root, or
# says which and how, and the build goes on with CGO_ENABLED=0.
build:
	@cgo=$$(bash scripts/build-deps.sh) && \
	echo "CGO_ENABLED=$$cgo $(GO) build -o $(BIN) ./cmd/callbox" && \
	CGO_ENABLED=$$cgo $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/callbox

# The appliance on its embedded default: synthetic camera and microphone and a
# simulated board when no hardware is found.
run: build
	./$(BIN) run --http $(HTTP)

# Debian packages the suite needs (ffmpeg, Chromium, qemu, cross compilers...).
deps:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-deps.sh; else sudo -n bash scripts/install-deps.sh || bash scripts/install-deps.sh; fi

# The whole suite: unit, interop (ffmpeg), browser (Chromium), network
# namespaces, HIL VMs, and the unit tests for arm64/armv7 under qemu-user.
# The end-to-end packages under test/ (VMs, Chromium, NAT lab, image) run one
# at a time after the rest: they measure latency and timing, and two of them
# side by side on a 2-core machine measure each other.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/test/')
	$(GO) test -count=1 -p 1 -timeout 25m ./test/...
	$(MAKE) test-cross

test-unit:
	$(GO) test -short -count=1 ./...

test-cross:
	bash scripts/cross.sh test

cross:
	bash scripts/cross.sh build

# The H.264 encoder's figure is 10 s of 720p30 paced in real time
# (docs/h264.md), not b.N as fast as possible.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./capture/... ./relay/... | grep -v /capture/h264enc)
	$(GO) test -run '^$$' -bench Encode720p30 -benchtime 300x ./capture/h264enc
	$(GO) test -run '^$$' -bench CallSendH264 -benchmem ./peer/box

# The relay under load: N loopback TCP clients in a separate process, with
# and without a slow one (docs/relay.md has the table). About 2 minutes.
# The emulated Wi-Fi (root: a network namespace and tc tbf): N = 1, 4, 10,
# 16 viewers over WebRTC and over the WebSocket/JPEG path (docs/webrtc.md).
bench-webrtc:
	$(GO) test -run '^$$' -bench WriteUnits -benchmem ./relay/webrtc
	CALLBOX_BENCH_WIFI=1 $(GO) test -count=1 -run '^TestWiFiBenchmark$$' -v ./relay/webrtc

bench-relay:
	$(GO) test -run '^$$' -bench Fanout -benchmem ./relay
	$(GO) build -o bin/relaybench ./relay/relaybench
	./bin/relaybench

# The hub under load (docs/hub.md has the table): registrations/s and RSS per
# box with 1,000, 10,000 and 50,000 simulated boxes (in their own process) on
# one hub on SQLite, then signals/s and latency between two instances through
# NATS. Needs nats-server (make deps). A few minutes.
.PHONY: bench-hub
bench-hub: build
	$(GO) test -run '^$$' -bench SignalAcrossInstances ./peer/hub/cluster
	$(GO) build -o bin/hubbench ./peer/hub/hubbench
	./bin/hubbench -callbox $(BIN)

# RTSP fan-out: the box's RTSP server against mediamtx (MEDIAMTX=path/to/mediamtx,
# optional), both measured by ../shared/peerbench (docs/integrations.md).
bench-rtsp:
	bash scripts/bench-rtsp.sh

fuzz:
	bash scripts/fuzz.sh

# The flashable SD-card image (Buildroot; needs the internet, see
# docs/image.md): make image BOARD=rpi4|rpizero2w|qemu
BOARD ?= rpi4
image:
	bash scripts/image.sh $(BOARD)

# The signed RAUC update bundle next to sdcard.img (docs/update.md); the
# image build makes it, so this is the same build.
bundle: image

# vendor/ for Buildroot, which builds Go with -mod=vendor (docs/image.md).
vendor:
	GO=$(GO) bash scripts/vendor.sh

# docs/config.md's key tables and board/callbox.example.toml, from the keys
# declared in board/config/keys.go (a test fails when they drift).
config-docs:
	$(GO) generate ./board/config

clean:
	rm -rf bin
