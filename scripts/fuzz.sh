#!/usr/bin/env bash
# Runs every fuzz target of the project for FUZZTIME each (default 10s).
# Each target's seed corpus (testdata/fuzz/<target>/) also runs in every
# plain `go test`; this script is the actual fuzzing. New crashers are
# written by `go test` to the package's testdata/fuzz/<target>/ directory:
# commit them with the fix as regression seeds.
#
#   FUZZTIME=1m scripts/fuzz.sh            # all targets, one minute each
#   scripts/fuzz.sh ./capture/rtpjpeg      # only the targets under a path
set -euo pipefail  # pipefail: the go test status survives the tee below
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"
GO="${GO:-go}"
# Fuzzing is CPU-bound; leave room for whatever else the machine runs.
PARALLEL="${FUZZPARALLEL:-$(( $(nproc) > 1 ? $(nproc) / 2 : 1 ))}"
# Minimizing each new interesting input of a multi-kilobyte packet stream
# takes longer than a short run lasts and stalls it; keep it to a few
# attempts (FUZZMINIMIZETIME=60s restores the go test default).
MINIMIZE="${FUZZMINIMIZETIME:-20x}"

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(./...)
fi

fail=0
ran=0
flakes=0
# `go test -list` names the fuzz targets of each package.
while read -r pkg; do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	targets=$(cd "$dir" && $GO test -list '^Fuzz' . 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "== $pkg $t ($FUZZTIME)"
		ran=$((ran + 1))
		corpus="$dir/testdata/fuzz/$t"
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		log=$(mktemp)
		if ! $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE" -parallel "$PARALLEL" "$pkg" 2>&1 | tee "$log"; then
			after=$(ls "$corpus" 2>/dev/null | sort || true)
			if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log" &&
				! grep -q 'failure while testing seed corpus' "$log"; then
				# Go 1.26's fuzz coordinator can report "context deadline
				# exceeded" when -fuzztime ends while a worker is busy
				# (golang/go#75804, fixed in Go 1.27). A real failure always
				# writes its input to $corpus; without one it is that race.
				echo "FLAKE: $pkg $t failed without writing a failing input (golang/go#75804)"
				flakes=$((flakes + 1))
			else
				echo "FAIL: $pkg $t (see the output above; failing inputs go to $corpus)"
				fail=1
			fi
		fi
		rm -f "$log"
	done
done < <($GO list "${pkgs[@]}")

echo "fuzz: $ran targets run, $flakes coordinator flakes"
if [ "$ran" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
exit $fail
