#!/usr/bin/env bash
# Runs twmb/franz-go v1.22.3's own tests against runnel's patched copy, built
# as runnel's release builds build it (the tag kgoomitkip848): the upstream
# module is fetched from the Go module proxy and this directory's .go files
# (pkg/kgo/runnel_test.go included) are laid over it. Two runs:
#
# 1. Every package's tests that need no broker (kbin, kgo, its sticky
#    balancer, kversion), and runnel's tests of its changes.
# 2. kgo's tests that need a broker (KGO_SEEDS), against `runnel serve`
#    built from this tree: producing, consuming, pausing, purging, consumer
#    groups (TestGroupETL) and transactions (TestTxnEtl) through the copy,
#    with runnel as the Kafka broker. KGO_TEST_RECORDS=20000 (upstream's
#    default is 500,000) keeps the ETL tests to seconds.
#
# The test helpers' probes for KIP-848 and share groups are set to false in
# the fetched helpers_test.go (the copy compiles both out), so the tests
# skip their 848 and share variants as they do against a broker without
# them. Skipped besides:
#   - TestAuditShare* and TestOptValuesTxnIDAndShare build a share
#     consumer, which the copy refuses (runnel_test.go checks the refusal);
#   - TestConsumeRegex expects the broker's internal __consumer_offsets
#     topic in Metadata: runnel keeps committed offsets out of the log and
#     lists no such topic.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	chmod -R u+w "$work"; rm -rf "$work"
}
trap cleanup EXIT
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json github.com/twmb/franz-go@v1.22.3 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -f "$src/pkg/kgo/client.go" ]; then
	echo "test-upstream: go mod download gave no franz-go source directory ($src)" >&2
	exit 1
fi
cp -r "$src"/. "$work/m"
chmod -R u+w "$work/m"
(cd "$here" && find . -name '*.go' -exec cp {} "$work/m/{}" \;)
cd "$work/m"
# runnel_test.go runs kfake, at the version runnel's own tests use.
kfake=$(cd "$root" && go list -m -f '{{.Version}}' github.com/twmb/franz-go/pkg/kfake)
go mod edit -require="github.com/twmb/franz-go/pkg/kfake@$kfake"
helpers=pkg/kgo/helpers_test.go
sed -i 's/^\(\t*\)allow848 = true$/\1allow848 = false/; s/^\(\t*\)allowShare = true$/\1allowShare = false/' "$helpers"
if grep -qE '^\s*(allow848|allowShare) = true$' "$helpers" || [ "$(grep -cE '^\s*(allow848|allowShare) = false$' "$helpers")" -ne 4 ]; then
	echo "test-upstream: $helpers no longer sets allow848 and allowShare as this script expects" >&2
	exit 1
fi

broker='TestPing|TestIssue1034|TestShareGroup|TestIssue325|TestConsumeRegexShareSkipsInternal|Test848RegexBrokerResolves|TestIssue337|TestDirectPartitionPurge|TestIssue434|TestAddRemovePartitions|TestPauseIssue489|TestPauseIssueOct2023|TestIssue523|TestIssue648|TestIssue810|TestIssue865|TestIssueFetchLargerThanBrokerMaxReadBytes|TestPooling|TestGroupSimple|TestHookPollStart|TestConsumeMaxDecompressBatchBytes|TestGroupETL|TestClient_Produce|TestIssue769|TestIssueProduceBrokerTooOldFailsRecords|TestIssueProduceSyncManualPartitionNegativeDoesNotPanic|TestIssue831|TestClient_ProduceLargeMessages|TestShareGroupETL|TestShareGroupAckOnClose|TestShareGroupOffsetsAdmin|TestTxnEtl'
skipped='TestAuditShareLeaveWaitsForInflightMigration|TestAuditShareMoveCollapseMarksCursorUnusable|TestAuditShareMetadataMigrationWaitsForLeave|TestOptValuesTxnIDAndShare|TestConsumeRegex'

echo "test-upstream: tests without a broker"
# A few of these make clients they never need a broker for; their seed is
# a closed port, not upstream's default 127.0.0.1:9092, where a runnel or
# Kafka started by hand may listen.
KGO_SEEDS=127.0.0.1:1 GOFLAGS=-mod=mod go test -tags kgoomitkip848 -count=1 -timeout 300s -skip "^($broker|$skipped)\$" ./pkg/...

echo "test-upstream: kgo's broker tests against runnel serve"
(cd "$root" && CGO_ENABLED=0 go build -tags 'nethttpomithttp2 kgoomitkip848' -o "$work/runnel" ./cmd/runnel)
# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for try in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 20000))
	if listening "$port"; then
		continue # taken
	fi
	rm -rf "$work/data"
	"$work/runnel" serve --data-dir "$work/data" --kafka-addr "127.0.0.1:$port" \
		--mqtt-addr "" --http-addr "" > "$work/serve.log" 2>&1 &
	pid=$!
	for _ in $(seq 50); do
		if listening "$port" || ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		break
	fi
	wait "$pid" || true
	pid=
done
if [ -z "$pid" ]; then
	echo "test-upstream: runnel serve did not start:" >&2
	cat "$work/serve.log" >&2
	exit 1
fi
if ! KGO_SEEDS="127.0.0.1:$port" KGO_TEST_RF=1 KGO_TEST_RECORDS=20000 GOFLAGS=-mod=mod \
	go test -tags kgoomitkip848 -count=1 -timeout 600s -run "^($broker)\$" ./pkg/kgo/ > "$work/out" 2>&1; then
	grep -E '^(---|===|ok|FAIL|panic)|_test.go:[0-9]+:' "$work/out" | grep -v '^=== \(RUN\|PAUSE\|CONT\|NAME\)' | tail -80
	echo "test-upstream: runnel serve's log:" >&2
	tail -40 "$work/serve.log" >&2
	exit 1
fi
grep -E '^(ok|FAIL)' "$work/out"
if grep -q 'no tests to run' "$work/out"; then
	echo "test-upstream: none of the broker tests exists in this upstream version" >&2
	exit 1
fi
