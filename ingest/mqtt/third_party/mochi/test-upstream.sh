#!/usr/bin/env bash
# Runs mochi-mqtt v2.7.9's own test suite against runnel's patched copy:
# the upstream module is fetched from the Go module proxy, this directory's
# .go files are laid over it, and upstream-tests.patch adapts the tests that
# send on the old outbound channel or assert the flow control runnel
# replaced (see PATCHES.md).
#
# Many upstream tests pace themselves with sleeps (100 µs to 50 ms) and fail
# now and then on a loaded 2-core box, mochi as released included; so the
# suite runs without -race (runnel's own ingest/mqtt tests drive this code
# under -race in `make race`), and tests that failed are run once more: a
# test failing twice fails this script.
# Skipped: TestEstablishConnectionInheritExistingTrueTakeover (times out
# after 30 s under load, v2.7.9 as released too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json github.com/mochi-mqtt/server/v2@v2.7.9 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$src"/. "$work/m"
chmod -R u+w "$work/m"
(cd "$here" && find . -name '*.go' -exec cp {} "$work/m/{}" \;)
cd "$work/m"
git apply "$here/upstream-tests.patch"
pkgs=(. ./packets/ ./listeners/ ./system/ ./mempool/)
skip='^TestEstablishConnectionInheritExistingTrueTakeover$'
if GOFLAGS=-mod=mod go test -count=1 -timeout 120s -skip "$skip" "${pkgs[@]}" > "$work/out" 2>&1; then
	grep -E '^(ok|FAIL)' "$work/out"
	exit 0
fi
failed=$(sed -n 's/^--- FAIL: \([A-Za-z0-9_]*\).*/\1/p' "$work/out" | sort -u | paste -sd'|')
if [ -z "$failed" ]; then
	cat "$work/out"
	exit 1
fi
echo "test-upstream: retrying once: $failed"
GOFLAGS=-mod=mod go test -count=1 -timeout 120s -run "^($failed)\$" "${pkgs[@]}"
