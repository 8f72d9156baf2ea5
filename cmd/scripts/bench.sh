#!/usr/bin/env bash
# make bench: every Go benchmark of the log, ingest and sync packages, each
# with a benchtime that measures something (a count of operations sized to
# a few seconds, not the 3 iterations that made BenchmarkDrain drain three
# records), then a table of the figures the README quotes, each with the
# command that reproduces its row. About 6-8 minutes on a quiet 2-core
# machine (9.5 with a load average of 15).
#
# The data directories are the benchmarks' temp dirs ($TMPDIR, else /tmp):
# a tmpfs there makes fsync free and the figures fiction, so it is refused
# unless RUNNEL_BENCH_ALLOW_TMPFS=1. RUNNEL_BENCH_OUT names a file that
# also gets the summary table; the raw `go test` output is kept in
# $RUNNEL_BENCH_DIR (default: a new temp dir, named at the end).
# RUNNEL_BENCH_WRITE_DOCS=1 (make bench-docs) also writes the table into
# README.md and log/doc.go, between their "figures:begin" and
# "figures:end" markers: the one table both quote.
set -uo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}

tmp=${TMPDIR:-/tmp}
# kind: the file system the path is on (statfs; "ext2/ext3" for ext4).
# findmnt names it better, but lists every mount stacked on the mount
# point, one line each: the last is the one on top.
kind=$(stat -f -c %T "$tmp" 2>/dev/null)
fstype=$(findmnt -n -o FSTYPE --target "$tmp" 2>/dev/null | tail -n 1)
fstype=${fstype:-$kind}
case $kind in
tmpfs | ramfs)
	if [ "${RUNNEL_BENCH_ALLOW_TMPFS:-}" != 1 ]; then
		echo "bench: $tmp is on $kind, where fsync is free: point TMPDIR at a real disk (or set RUNNEL_BENCH_ALLOW_TMPFS=1)" >&2
		exit 1
	fi
	fsnote="$kind — WARNING: fsync is free here, durable-ack figures are not real"
	;;
*) fsnote="$fstype on $(findmnt -n -o SOURCE --target "$tmp" 2>/dev/null | tail -n 1 | grep . || echo '?')" ;;
esac
dir=${RUNNEL_BENCH_DIR:-$(mktemp -d "${tmp%/}/runnel-bench-XXXXXX")}
mkdir -p "$dir"
raw=$dir/raw.txt
results=$dir/results.tsv # command <TAB> benchmark <TAB> value <TAB> unit
: >"$raw"
: >"$results"
failed=()
started=$(date +%s)

# bench PATTERN BENCHTIME PACKAGE: one go test invocation; its benchmark
# lines go to $results with the command that produced them.
bench() {
	local pattern=$1 benchtime=$2 pkg=$3
	local cmd="go test -run '^\$' -bench '$pattern' -benchtime $benchtime $pkg"
	echo "== $cmd"
	local out=$dir/run.txt
	$GO test -run '^$' -bench "$pattern" -benchtime "$benchtime" -timeout 30m "$pkg" >"$out" 2>&1
	local rc=$?
	cat "$out" >>"$raw"
	# A result line is "BenchmarkName-N  iterations  value unit ...";
	# log lines printed while a benchmark runs can split it after the name.
	awk -v cmd="$cmd" '
		function emit(name, s,   f, n, i) {
			n = split(s, f, /[ \t]+/)
			for (i = 2; i < n; i += 2) printf "%s\t%s\t%s\t%s\n", cmd, name, f[i], f[i+1]
		}
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			rest = $0; sub(/^[^ \t]+[ \t]+/, "", rest)
			if (rest ~ /^[0-9]+[ \t]+[0-9.e+-]+ ns\/op/) { emit(name, rest); name = "" }
			next
		}
		name != "" && /^[ \t]*[0-9]+[ \t]+[0-9.e+-]+ ns\/op/ {
			s = $0; sub(/^[ \t]+/, "", s); emit(name, s); name = ""
		}
	' "$out" >>"$results"
	grep -E '^(Benchmark|ok|FAIL|---|panic)' "$out" | grep -v -- '--- BENCH' | sed 's/^/   /'
	if [ $rc -ne 0 ]; then
		failed+=("$cmd")
		tail -30 "$out" | sed 's/^/   ! /'
	fi
}

echo "bench: raw output in $dir; temp dirs on $tmp ($fsnote)"

# The commit log (log/): the public benchmarks with their baselines.
bench '^BenchmarkBulk$' 20x ./log/                 # op: 100 batches of 100 x 1 KiB
bench '^BenchmarkManyWriters$' 20x ./log/          # op: 10,000 acknowledged appends
bench '^BenchmarkTrickle$' 5x ./log/               # op: 10,000 records at 10,000/s (1 s)
bench '^BenchmarkTrickleDevice$' 3x ./log/         # op: 1 s of trickle on a loop-device ext4
bench '^BenchmarkSequentialRead$' 5x ./log/        # op: read 1 GiB
bench '^BenchmarkRecovery$' 3x ./log/              # op: one open of 2 GiB / 500 segments
bench '^BenchmarkRecoveryShared$' 3x ./log/        # op: one open of 2 GiB of trickle data
# The design measurements behind log/doc.go (package-internal).
bench '^BenchmarkRecoveryCore$' 3x ./log/          # op: one open of 500 MiB
bench '^BenchmarkTrickleCore$' 1x ./log/           # op: 3 s at 10,000 rec/s
bench '^BenchmarkManyWritersCore$' 32000x ./log/   # op: one acknowledged append
bench '^BenchmarkBulkCore$' 2000x ./log/           # op: one 100 KiB batch
bench '^BenchmarkReadCore$' 10x ./log/             # op: read 128 MiB
bench '^BenchmarkAppendCPUCore$' 1s ./log/         # op: one append, fsync never
bench '^BenchmarkGrowSync$' 1500x ./log/          # op: pwrite + fdatasync of one entry
bench '^BenchmarkCheckRecords$' 1s ./log/batch/    # op: one 100-record batch
# Ingest.
bench '^BenchmarkProduce$' 1000000x ./ingest/kafka/           # op: one record
bench '^BenchmarkFetch$' 1000000x ./ingest/kafka/             # op: one record
bench '.' 1s ./ingest/kafka/group/                            # op: one commit / heartbeat
bench '^BenchmarkPublishQoS[01]$' 20000x ./ingest/mqtt/        # op: one message
bench '^BenchmarkMosquittoPubQoS[01]$' 20000x ./ingest/mqtt/   # op: one message
# Store-and-forward to a local Apache Kafka (started as kafka-server-start.sh does).
bench '^BenchmarkDrain$' 10000000x ./sync/kafka/       # op: one record of the backlog
bench '^BenchmarkLiveLatency$' 100000x ./sync/kafka/   # op: one record at 10,000/s (10 s)
bench '^BenchmarkBandwidthCap$' 3x ./sync/kafka/       # op: one second at the cap

# The README's figures: label | benchmark (its name; a trailing * matches
# any rest) | unit.
# Each row's value is that benchmark's metric from the run above.
figures() {
	cat <<'EOF'
Commit log: bulk, 1 KiB records in 100-record batches, fsync always|BenchmarkBulk/log-fsync-always|MB/s
Commit log: same, plain file with one fdatasync per batch|BenchmarkBulk/baseline-write-fdatasync|MB/s
Commit log: 64 waiting writers on 64 partitions, shared segments (default)|BenchmarkManyWriters/log-fsync-always-shared|acked-rec/s
Commit log: same, journal format|BenchmarkManyWriters/log-fsync-always-journal|acked-rec/s
Commit log: same, 64 files with an fdatasync each|BenchmarkManyWriters/baseline-file-per-writer-fdatasync|acked-rec/s
Commit log: 1,000 trickling partitions at 10,000 rec/s, p50|BenchmarkTrickle/log-fsync-always-shared|p50-ms
Commit log: same, p99|BenchmarkTrickle/log-fsync-always-shared|p99-ms
Commit log: same, bytes written by the process per byte appended|BenchmarkTrickle/log-fsync-always-shared|dev-bytes/byte
Commit log: same, journal format, bytes per byte|BenchmarkTrickle/log-fsync-always-journal|dev-bytes/byte
Commit log: trickle on an ext4 loop device, device bytes per byte, new shared files|BenchmarkTrickleDevice/ext4/shared|dev-bytes/byte
Commit log: same, shared files reused|BenchmarkTrickleDevice/ext4/shared-steady|dev-bytes/byte
Commit log: same with fast_commit, new shared files|BenchmarkTrickleDevice/ext4-noatime-fastcommit/shared|dev-bytes/byte
Commit log: same with fast_commit, shared files reused|BenchmarkTrickleDevice/ext4-noatime-fastcommit/shared-steady|dev-bytes/byte
Commit log: same, journal format|BenchmarkTrickleDevice/ext4/journal|dev-bytes/byte
Commit log: sequential read from page cache|BenchmarkSequentialRead/log-read|MB/s
Commit log: open a 2 GiB log of 500 segments after an unclean stop|BenchmarkRecovery/open-after-unclean-stop*|ms/open
Commit log: open 2 GiB of trickle data in shared files after an unclean stop|BenchmarkRecoveryShared/open-after-unclean-stop*|ms/open
Commit log: same, heap left by the open|BenchmarkRecoveryShared/open-after-unclean-stop*|heap-MiB
Forwarding: drain a 10,000,000-record backlog to Apache Kafka|BenchmarkDrain|fwd-rec/s
Forwarding: same, / a plain franz-go producer with the same origin headers|BenchmarkDrain|ratio-same-records
Forwarding: same, / a plain franz-go producer of bare records|BenchmarkDrain|ratio
Forwarding: live at 10,000 rec/s, rate reached|BenchmarkLiveLatency|rec/s
Forwarding: live, p50 age at upstream acknowledgement|BenchmarkLiveLatency|p50-ms
Forwarding: live, p99 age at upstream acknowledgement|BenchmarkLiveLatency|p99-ms
Forwarding: bandwidth cap (1 MiB/s) reached, real Apache Kafka upstream|BenchmarkBandwidthCap|cap-%
EOF
}

# table: the figures as a Markdown table, one row per line of figures().
table() {
	echo "| figure | value | unit | command |"
	echo "|---|---:|---|---|"
	figures | while IFS='|' read -r label name unit; do
		line=$(awk -F'\t' -v n="$name" -v u="$unit" '
			(n ~ /\*$/ ? substr($2, 1, length(n)-1) == substr(n, 1, length(n)-1) : $2 == n) && $4 == u { hit = $1 "\t" $3 }
			END { print hit }' "$results")
		if [ -z "$line" ]; then
			echo "| $label | (not measured) | $unit | |"
			continue
		fi
		echo "| $label | ${line#*$'\t'} | $unit | \`${line%%$'\t'*}\` |"
	done
}

# about: one line saying where and when the figures were measured.
about() {
	echo "make bench, $(date -u +%Y-%m-%d), $(git describe --tags --always --dirty 2>/dev/null || echo '?'); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); temp dirs on $tmp ($fsnote); $($GO version | cut -d' ' -f3-)."
}

summary() {
	echo
	echo "## Figures the README quotes"
	echo
	echo "$(about)"
	echo "MQTT and Kafka-API figures beside Mosquitto and Apache Kafka: make bench-vs-mosquitto, make bench-vs-kafka."
	echo
	cat "$dir/table.md"
}

# write_docs FILE PREFIX: replaces the lines between the figures markers
# of FILE (README.md, log/doc.go) with the about line and the table, each
# line behind PREFIX. cmd/runnel TestFiguresTables keeps the two equal.
write_docs() {
	local file=$1 prefix=$2 block=$dir/block.txt
	local blank=${prefix%%[[:space:]]}
	{
		printf '%s\n' "$blank"
		printf '%s%s\n' "$prefix" "$(about)"
		printf '%s\n' "$blank"
		awk -v p="$prefix" '{ print p $0 }' "$dir/table.md"
		printf '%s\n' "$blank"
	} >"$block"
	awk -v block="$block" '
		/figures:begin/ { print; while ((getline l < block) > 0) print l; skip = 1; next }
		/figures:end/ { skip = 0 }
		!skip' "$file" >"$file.new" && mv "$file.new" "$file"
	echo "bench: figures written to $file"
}

table >"$dir/table.md"
summary | tee -a "$raw" | tee "${RUNNEL_BENCH_OUT:-/dev/null}"
if [ "${RUNNEL_BENCH_WRITE_DOCS:-}" = 1 ]; then
	if [ ${#failed[@]} -gt 0 ]; then
		echo "bench: not writing the figures into the docs: some benchmarks failed" >&2
	else
		write_docs README.md ""
		write_docs log/doc.go "//	"
	fi
fi
echo
echo "bench: $(($(date +%s) - started)) s; raw output in $raw"
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: FAILED:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
