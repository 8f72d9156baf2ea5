#!/usr/bin/env bash
# Runs go-msgpack v2.1.5's own test suite (the codec package, as upstream's
# CI runs it: go test ./codec) against runnel's patched copy: the upstream
# module is fetched from the Go module proxy, this directory's .go files are
# laid over it, the files the copy leaves out are removed, and
# upstream-tests.patch takes out the tests of the net/rpc codecs the copy
# does not have (see PATCHES.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json github.com/hashicorp/go-msgpack/v2@v2.1.5 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$src"/. "$work/m"
chmod -R u+w "$work/m"
rm "$work"/m/codec/{gen.go,gen-internal.go,gen.generated.go,codecgen.go}
(cd "$here" && find . -name '*.go' -exec cp {} "$work/m/{}" \;)
cd "$work/m"
git apply "$here/upstream-tests.patch"
GOFLAGS=-mod=mod go test -count=1 -timeout 120s ./codec
