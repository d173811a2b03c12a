#!/bin/bash
# make bench-rtsp: one RTSP publisher, N RTSP/TCP readers on loopback, for
# the box's RTSP server (outputs/rtsp/rtspbench: the relay and
# outputs/rtsp.Server, as in `callbox run`) and, when MEDIAMTX is set, for
# mediamtx, measured the same way by the reference harness in
# ../shared/peerbench (run from there, not copied: its README).
#
# env: PEERBENCH (../shared/peerbench), OUT (a fresh temp dir), NS ("1 100 300 500 700"),
#      MEDIAMTX (a mediamtx binary; unset: the box only), MEDIAMTX_YML (its default mediamtx.yml),
#      WARMUP/DUR seconds (3/10), GATE_MAX (20: the harness waits at most this long for a quiet machine),
#      SLOW_N (100: the slow-reader row's fast readers), SLOWRATE (128000 B/s: a quarter of the 4.1 Mbit/s stream),
#      RELAYS ("callbox mediamtx": which to measure)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PEERBENCH:-}" ]; then  # ../shared/peerbench beside the clone (or beside a worktree's parent)
  for d in "$ROOT/../shared/peerbench" "$ROOT/../../shared/peerbench"; do [ -d "$d" ] && PEERBENCH=$d && break; done
fi
PEERBENCH=$(cd "${PEERBENCH:?no ../shared/peerbench: set PEERBENCH}" && pwd)
OUT=${OUT:-$(mktemp -d /tmp/bench-rtsp.XXXXXX)}
NS=${NS:-1 100 300 500 700}
SLOW_N=${SLOW_N:-100}
SLOWRATE=${SLOWRATE:-128000}
PORT=${PORT:-18554}
export WARMUP=${WARMUP:-3} DUR=${DUR:-10} GATE_MAX=${GATE_MAX:-20} RETRIES=${RETRIES:-0}
mkdir -p "$OUT/bin"
echo "bench-rtsp: results in $OUT"

(cd "$PEERBENCH" && go build -o "$OUT/bin/rtspbench" .)
(cd "$ROOT" && go build -o "$OUT/bin/callbox-rtsp" ./outputs/rtsp/rtspbench)
if [ ! -f "$OUT/bin/media/video.mjpeg" ]; then
  (cd "$OUT/bin" && bash "$PEERBENCH/prep-media.sh" >/dev/null)
fi
export BIN="$OUT/bin" URL="rtsp://127.0.0.1:$PORT/live" VIDEO="$OUT/bin/media/video.mjpeg" AUDIO="$OUT/bin/media/audio.ulaw" OUTDIR="$OUT"

run() { # label relay-command
  local label=$1; shift
  export RELAY_CMD="$*"
  # sweep.sh ends with its interference check's status: not an error here.
  # shellcheck disable=SC2086
  bash "$PEERBENCH/sweep.sh" "$label" $NS || true
  bash "$PEERBENCH/sweep.sh" "$label-slow" "$SLOW_N" -- -slow 1 -slowrate "$SLOWRATE" || true
}

RELAYS=${RELAYS:-callbox mediamtx}
case " $RELAYS " in *" callbox "*) run callbox "$OUT/bin/callbox-rtsp" -listen "127.0.0.1:$PORT" ;; esac
if [ -n "${MEDIAMTX:-}" ] && [[ " $RELAYS " == *" mediamtx "* ]]; then
  yml=${MEDIAMTX_YML:-$(dirname "$MEDIAMTX")/../mediamtx.yml}
  # mediamtx's default configuration with RTMP, HLS, WebRTC and SRT off,
  # RTSP over TCP only, on loopback (the harness README's setup).
  sed -e 's/^rtmp: true/rtmp: false/' -e 's/^hls: true/hls: false/' -e 's/^webrtc: true/webrtc: false/' \
      -e 's/^srt: true/srt: false/' -e 's/^moq: true/moq: false/' -e 's/^rtspTransports: .*/rtspTransports: [tcp]/' \
      -e "s/^rtspAddress: .*/rtspAddress: 127.0.0.1:$PORT/" "$yml" > "$OUT/mediamtx.yml"
  run mediamtx "$MEDIAMTX" "$OUT/mediamtx.yml"
fi

python3 "$PEERBENCH/summarize.py" "$OUT/results.jsonl" | tee "$OUT/table.md"
python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
print("\nslow reader (a quarter of the stream, 4 KB SO_RCVBUF) beside the fast ones:")
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("slow_readers"):
        f = r.get("slow_frame_lat_ms_p50_p90_p99_p999_max") or [0] * 5
        print("  %-22s N=%d slow: %.2f Mbit/s, loss %.1f%%, frame latency p50 %.0f p99 %.0f max %.0f ms; fast p99 %.1f ms; errors %s" % (
            r["relay"], r["readers"], r.get("slow_reader_mbit_s", 0), r.get("slow_reader_loss_pct", 0), f[0], f[2], f[4],
            r["frame_lat_ms_p50_p90_p99_p999_max"][2], r.get("slow_errors")))
PY
