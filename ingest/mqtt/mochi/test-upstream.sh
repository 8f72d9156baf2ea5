#!/usr/bin/env bash
# Runs mochi-mqtt v2.7.9's own test suite (under the race detector) against
# runnel's patched copy: the upstream module is fetched from the Go module
# proxy, this directory's .go files are laid over it, and the two test lines
# that sent on the old outbound channel are rewritten for outQueue.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json github.com/mochi-mqtt/server/v2@v2.7.9 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$src"/. "$work/m"
chmod -R u+w "$work/m"
(cd "$here" && find . -name '*.go' -exec cp {} "$work/m/{}" \;)
cd "$work/m"
sed -i 's|cl.State.outbound <- small|cl.State.outbound.push(small)|' clients_test.go
sed -i 's|cl.State.outbound <- new(packets.Packet)|cl.State.outbound.push(new(packets.Packet))|' server_test.go
GOFLAGS=-mod=mod go test -race -count=1 -timeout 300s . ./packets/ ./listeners/ ./system/ ./mempool/
