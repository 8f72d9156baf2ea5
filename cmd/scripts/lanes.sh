#!/bin/sh
# lanes.sh runs make targets in lanes: the targets of one lane one after
# another, the lanes at the same time. Each target's output goes to a file
# and is printed whole when the target ends, with its time, so two lanes'
# output never interleaves. A failed target stops its lane, and the other
# lanes start no new target; the script exits non-zero once every lane has
# stopped.
#
#	lanes.sh "unit integration-kafka" "race fuzz-short test-arm"
#
# MAKE names the make to run (the Makefile passes $(MAKE)).
set -u
MAKE=${MAKE:-make}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/print.lock"

lane() {
	for target in $1; do
		[ -e "$tmp/failed" ] && return 0
		start=$(date +%s)
		if $MAKE --no-print-directory "$target" >"$tmp/$target.out" 2>&1; then
			status=ok
		else
			status=FAILED
			echo "$target" >>"$tmp/failed"
		fi
		end=$(date +%s)
		(
			flock 9
			echo "=== make $target: $status in $((end - start)) s"
			cat "$tmp/$target.out"
		) 9>"$tmp/print.lock"
		[ "$status" = ok ] || return 1
	done
}

pids=""
for l in "$@"; do
	lane "$l" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p"
done
if [ -e "$tmp/failed" ]; then
	echo "=== failed: $(tr '\n' ' ' <"$tmp/failed")"
	exit 1
fi
