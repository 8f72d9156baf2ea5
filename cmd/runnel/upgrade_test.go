package main

// Data directories written by earlier releases (testdata/upgrade/<name>/data)
// and what the release that wrote them served from them
// (testdata/upgrade/<name>/expect.json). TestUpgradeFixtures opens a copy
// of each with today's code and checks that it serves every record and
// keeps every group offset, forwarding cursor and MQTT session.
//
// Generate a fixture of today's release (once per release that changes a
// format; never regenerate an old one: it stands for what that release
// wrote) with
//
//	go test ./cmd/runnel -run '^TestUpgradeFixtures$' -args -update-fixture=NAME
//
// which runs the runnel binary built from this tree: a clean stop and a
// restart, then kill -9, so the dir holds segments, rolled and active
// shared files, a shared extent index, the journal, a recovery checkpoint,
// leader epochs and meta.db with a consumer group's offsets, a forwarding
// route's cursors (to an in-process kfake upstream), a persistent MQTT
// session with a queued QoS 1 message, and a retained message; a topic
// holding a committed, an aborted and a committed transaction (what
// read_committed reads is kept from format2 on); a compacted topic after
// the cleaner's passes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

var updateFixture = flag.String("update-fixture", "", "write testdata/upgrade/NAME from the binary built from this tree")

// fixtureGroup, fixtureRoute, fixtureClient, fixtureTxnTopic,
// fixtureCompacted name what the generator makes.
const (
	fixtureGroup     = "fixture-group"
	fixtureRoute     = "fixture-route"
	fixtureClient    = "fixture-sub"
	fixtureTxnTopic  = "txn"
	fixtureCompacted = "compacted"
)

// fixtureState is what a data dir serves and keeps; expect.json holds it.
type fixtureState struct {
	// Records: "topic/partition@offset key sha256(value)[:16]" in order.
	Records []string `json:"records"`
	// Groups: group → "topic/partition" → committed offset (OffsetFetch).
	Groups map[string]map[string]int64 `json:"groups"`
	// Cursors: cursor name → "topic/partition" → offset (meta.db).
	Cursors map[string]map[string]int64 `json:"cursors"`
	// KV: bucket → keys (meta.db: MQTT sessions, subscriptions, retained
	// and queued messages).
	KV map[string][]string `json:"kv"`
	// MQTT: what mosquitto_sub receives: the retained message, and the
	// QoS 1 message queued for the persistent session.
	MQTT []string `json:"mqtt"`
	// Committed: topic → the values a read_committed consumer reads (the
	// topics that hold transactions, from data format 2 on): the
	// committed transactions' records, never the aborted ones'.
	Committed map[string][]string `json:"committed,omitempty"`
}

func TestUpgradeFixtures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary on each fixture: skipped with -short")
	}
	needTool(t, "mosquitto_sub")
	needTool(t, "mosquitto_pub")
	if *updateFixture != "" {
		generateFixture(t, filepath.Join("testdata", "upgrade", *updateFixture))
	}
	dirs, _ := filepath.Glob(filepath.Join("testdata", "upgrade", "*", "expect.json"))
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	if len(dirs) == 0 {
		t.Fatal("no fixtures in testdata/upgrade")
	}
	for _, fx := range dirs {
		t.Run(filepath.Base(fx), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(fx, "expect.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want fixtureState
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			got := observeFixture(t, filepath.Join(fx, "data"))
			compareFixture(t, got, want)
		})
	}
}

func compareFixture(t *testing.T, got, want fixtureState) {
	t.Helper()
	if len(got.Records) != len(want.Records) {
		t.Errorf("%d records served, want %d", len(got.Records), len(want.Records))
	}
	for i := range min(len(got.Records), len(want.Records)) {
		if got.Records[i] != want.Records[i] {
			t.Errorf("record %d: %s, want %s", i, got.Records[i], want.Records[i])
			break
		}
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{{"group offsets", got.Groups, want.Groups}, {"cursors", got.Cursors, want.Cursors}, {"meta.db KV keys", got.KV, want.KV}, {"MQTT", got.MQTT, want.MQTT},
		{"read_committed values", got.Committed, want.Committed}} {
		g, _ := json.Marshal(c.got)
		w, _ := json.Marshal(c.want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s: %s\nwant %s", c.what, g, w)
		}
	}
}

// copyDir copies the tree src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// observeFixture opens a copy of the data dir src with today's code: first
// the log package (meta.db: cursors, MQTT session keys), then `runnel
// serve` (every record over Kafka Fetch, the group's offsets over
// OffsetFetch, the MQTT retained and queued messages over MQTT).
func observeFixture(t *testing.T, src string) fixtureState {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	copyDir(t, src, dir)
	st := fixtureState{Groups: map[string]map[string]int64{}, Cursors: map[string]map[string]int64{}, KV: map[string][]string{}}

	l, err := rlog.Open(&rlog.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("open the fixture with the log package: %v", err)
	}
	cur, err := l.Meta().Cursors("forward/" + fixtureRoute)
	if err != nil {
		t.Fatal(err)
	}
	st.Cursors["forward/"+fixtureRoute] = tpMap(cur)
	for _, bucket := range []string{"mqtt-clients", "mqtt-subs", "mqtt-retained", "mqtt-inflight"} {
		var keys []string
		l.Meta().KVForEach(bucket, func(k string, _ []byte) error {
			keys = append(keys, strings.ReplaceAll(k, "\x00", "|"))
			return nil
		})
		sort.Strings(keys)
		st.KV[bucket] = keys
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	s := &runnelServer{
		bin: runnelBinary(t), dir: filepath.Dir(dir),
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		logPath:      filepath.Join(t.TempDir(), "server.log"),
		startTimeout: 30 * time.Second, stopTimeout: 15 * time.Second,
	}
	t.Cleanup(func() { s.kill() })
	if err := s.start(); err != nil {
		t.Fatalf("serve the fixture: %v\n%s", err, s.LogTail())
	}
	st.Records = servedRecords(t, s.Addr())
	if slices.ContainsFunc(st.Records, func(r string) bool { return strings.HasPrefix(r, fixtureTxnTopic+"/") }) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st.Committed = map[string][]string{fixtureTxnTopic: readCommitted(t, ctx, s.Addr(), fixtureTxnTopic)}
		cancel()
	}
	st.Groups[fixtureGroup] = groupOffsets(t, s.Addr(), fixtureGroup)
	host, port, _ := net.SplitHostPort(s.mqtt)
	st.MQTT = append(st.MQTT, strings.TrimSpace(runTool(t, 30*time.Second, "", "mosquitto_sub", "-h", host, "-p", port, "-t", "plant/state", "-C", "1", "-W", "20", "-v")))
	st.MQTT = append(st.MQTT, strings.TrimSpace(runTool(t, 30*time.Second, "", "mosquitto_sub", "-h", host, "-p", port, "-c", "-i", fixtureClient, "-q", "1", "-t", "alarms/#", "-C", "1", "-W", "20", "-v")))
	s.Stop(t)
	return st
}

func tpMap(m map[meta.TopicPartition]int64) map[string]int64 {
	out := map[string]int64{}
	for tp, o := range m {
		out[fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)] = o
	}
	return out
}

// servedRecords reads every partition of every topic from offset 0.
func servedRecords(t *testing.T, addr string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, _, err := fetchMetadata(ctx, cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(topics, func(a, b topicMeta) int { return strings.Compare(a.name, b.name) })
	var out []string
	for _, tm := range topics {
		for _, p := range tm.partitions {
			for _, r := range fetchedRecords(t, addr, tm.name, p) {
				out = append(out, recordLine(tm.name, p, r))
			}
		}
	}
	return out
}

// fetchedRecords is every record one Fetch from offset 0 of topic/p
// returns.
func fetchedRecords(t *testing.T, addr, topic string, p int32) []batch.Record {
	t.Helper()
	var out []batch.Record
	data, _ := rawFetch(t, addr, topic, p, 0)
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			t.Fatalf("%s/%d: %v", topic, p, err)
		}
		recs, err := batch.Records(data[:h.Size()])
		if err != nil {
			t.Fatalf("%s/%d: %v", topic, p, err)
		}
		out = append(out, recs...)
		data = data[h.Size():]
	}
	return out
}

// recordLine is one record as the fixtures list it: where it is, its key
// and a hash of its value.
func recordLine(topic string, p int32, r batch.Record) string {
	sum := sha256.Sum256(r.Value)
	return fmt.Sprintf("%s/%d@%d %s %s", topic, p, r.Offset, r.Key, hex.EncodeToString(sum[:8]))
}

// groupOffsets asks the server for group's committed offsets.
func groupOffsets(t *testing.T, addr, group string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	out := map[string]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.Offset >= 0 {
				out[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = rp.Offset
			}
		}
	}
	return out
}

// generateFixture writes testdata/upgrade/NAME: see the file comment.
func generateFixture(t *testing.T, fx string) {
	if _, err := os.Stat(fx); err == nil {
		t.Fatalf("%s exists: a fixture stands for the release that wrote it; remove it first only if that is this one", fx)
	}
	up, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "runnel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`upstreams:
  central: {kind: kafka, brokers: [%q]}
routes:
  - {name: %s, upstream: central, topics: [trickle], target: "central.{topic}"}
`, up.ListenAddrs()[0], fixtureRoute)), 0o644)
	s := &runnelServer{
		bin: runnelBinary(t), dir: dir,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		logPath:      filepath.Join(dir, "server.log"),
		startTimeout: 30 * time.Second, stopTimeout: 15 * time.Second,
		extra: []string{"--config", cfg, "--default-partitions", "3", "--segment-bytes", "65536", "--min-free-bytes", "-1", "--cleaner-interval", "300ms"},
	}
	t.Cleanup(func() { s.kill() })
	if err := s.start(); err != nil {
		t.Fatalf("start: %v\n%s", err, s.LogTail())
	}
	for _, topic := range []string{"bulk", "trickle"} {
		mustCLI(t, "", "topic", "create", topic, "--partitions", "3", "--brokers", s.Addr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression())) // bulk batches stay over the 16 KiB that goes to shared files
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	n := 0
	produce := func(topic string, p int32, count, size int, together bool) {
		t.Helper()
		var rs []*kgo.Record
		for range count {
			v := bytes.Repeat([]byte{byte('a' + n%26)}, size)
			copy(v, fmt.Sprintf("%s-%d-%d ", topic, p, n))
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprint("k", n)), Value: v})
			n++
		}
		if together {
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			return
		}
		for _, r := range rs {
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	host, port, _ := net.SplitHostPort(s.mqtt)
	mqttPub := func(args ...string) {
		t.Helper()
		runTool(t, 30*time.Second, "", "mosquitto_pub", append([]string{"-h", host, "-p", port, "-q", "1"}, args...)...)
	}

	// Phase 1, stopped cleanly: bulk batches into segment files (several
	// per partition), small ones into the shared file, a group's offsets,
	// the retained message and the persistent session.
	for p := range int32(3) {
		if p == 0 { // partition 0 only: the fixture stays small
			for range 3 {
				produce("bulk", p, 17, 1024, true)
			}
		}
		produce("trickle", p, 15, 100, false)
	}
	committed := fixtureTransactions(t, s.Addr())
	compacted := fixtureCompaction(t, s.Addr())
	gcl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.ConsumerGroup(fixtureGroup), kgo.ConsumeTopics("bulk"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 40; {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		fs := gcl.PollRecords(pctx, 40-got)
		cancel()
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := gcl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	gcl.Close()
	mqttPub("-r", "-t", "plant/state", "-m", "running")
	runTool(t, 30*time.Second, "", "mosquitto_sub", "-h", host, "-p", port, "-c", "-i", fixtureClient, "-q", "1", "-t", "alarms/#", "-E")
	mqttPub("-t", "alarms/pump7", "-m", "overpressure") // queued for the offline session
	time.Sleep(time.Second)                             // sessions are written within 200 ms
	s.Stop(t)

	// Phase 2, after a restart (a new shared file): more of both, a
	// checkpoint, then bulk and small appends to the same partitions (the
	// small ones journaled), and kill -9.
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.LogTail())
	}
	for p := range int32(3) {
		produce("trickle", p, 10, 100, false)
	}
	time.Sleep(11 * time.Second) // a recovery checkpoint (every 10 s)
	for p := range int32(3) {
		if p == 0 {
			produce("bulk", p, 17, 1024, true)
		}
		produce("bulk", p, 3, 100, false)
		produce("trickle", p, 5, 100, false)
	}
	s.Kill9(t)

	if err := os.MkdirAll(fx, 0o755); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(dir, "data"), filepath.Join(fx, "data"))
	os.Remove(filepath.Join(fx, "data", rlog.LockFileName))
	got := observeFixture(t, filepath.Join(fx, "data"))
	produced := 0
	for _, r := range got.Records {
		if strings.HasPrefix(r, "bulk/") || strings.HasPrefix(r, "trickle/") {
			produced++
		}
	}
	if produced != n {
		t.Fatalf("the fixture serves %d of the %d records acknowledged while writing it", produced, n)
	}
	if len(got.Records) == 0 || len(got.Groups[fixtureGroup]) == 0 || len(got.Cursors["forward/"+fixtureRoute]) == 0 || len(got.KV["mqtt-inflight"]) == 0 || len(got.MQTT) != 2 {
		t.Fatalf("the fixture lacks something it must hold: %+v", got)
	}
	if !slices.Equal(got.Committed[fixtureTxnTopic], committed) {
		t.Fatalf("read_committed of the fixture reads %q, want the committed %q", got.Committed[fixtureTxnTopic], committed)
	}
	var cleaned []string
	for _, r := range got.Records {
		if strings.HasPrefix(r, fixtureCompacted+"/") {
			cleaned = append(cleaned, r)
		}
	}
	if !slices.Equal(cleaned, compacted) {
		t.Fatalf("the fixture's compacted topic serves %q, want %q (as after the cleaner's pass)", cleaned, compacted)
	}
	b, _ := json.MarshalIndent(got, "", "  ")
	if err := os.WriteFile(filepath.Join(fx, "expect.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d records", fx, len(got.Records))
}

// fixtureTransactions writes transactions to fixtureTxnTopic with a
// transactional producer: 2 records committed, 3 aborted, 1 committed.
// It returns the committed values, in order.
func fixtureTransactions(t *testing.T, addr string) []string {
	t.Helper()
	mustCLI(t, "", "topic", "create", fixtureTxnTopic, "--partitions", "1", "--brokers", addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("fixture-txn"), kgo.DefaultProduceTopic(fixtureTxnTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var committed []string
	for i, txn := range []struct {
		values []string
		end    kgo.TransactionEndTry
	}{
		{[]string{"committed-1", "committed-2"}, kgo.TryCommit},
		{[]string{"aborted-1", "aborted-2", "aborted-3"}, kgo.TryAbort},
		{[]string{"committed-3"}, kgo.TryCommit},
	} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range txn.values {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint("t", i)), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, txn.end); err != nil {
			t.Fatal(err)
		}
		if txn.end == kgo.TryCommit {
			committed = append(committed, txn.values...)
		}
	}
	return committed
}

// fixtureCompaction writes fixtureCompacted (cleanup.policy compact, 1 KiB
// segments): 6 values for each of 5 keys, a tombstone, then filler that
// seals their segments, and waits for the cleaner's passes (the history
// and the tombstone removed). It returns the records served after them.
func fixtureCompaction(t *testing.T, addr string) []string {
	t.Helper()
	mustCLI(t, "", "topic", "create", fixtureCompacted, "--partitions", "1", "--brokers", addr,
		"--config", "cleanup.policy=compact", "--config", "segment.bytes=1024", "--config", "delete.retention.ms=1",
		"--config", "min.cleanable.dirty.ratio=0.1")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(fixtureCompacted), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	put := func(k string, v []byte) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	latest := map[string]string{}
	for r := range 6 {
		for k := range 5 {
			v := fmt.Sprintf("reading %d of c%d", r, k)
			put(fmt.Sprint("c", k), []byte(v))
			latest[fmt.Sprint("c", k)] = v
		}
	}
	put("c1", nil) // a tombstone
	delete(latest, "c1")
	for i := range 12 {
		v := fmt.Sprint("filler ", i)
		put(fmt.Sprint("f", i), []byte(v))
		latest[fmt.Sprint("f", i)] = v
	}
	const produced = 6*5 + 1 + 12
	deadline := time.Now().Add(60 * time.Second)
	for {
		var recs []string
		tombstone := false
		last := map[string]string{}
		for _, r := range fetchedRecords(t, addr, fixtureCompacted, 0) {
			recs = append(recs, recordLine(fixtureCompacted, 0, r))
			if r.Value == nil {
				tombstone = true
				delete(last, string(r.Key))
			} else {
				last[string(r.Key)] = string(r.Value)
			}
		}
		// Done once the tombstone is gone too (delete.retention.ms):
		// nothing is left for a later pass to remove.
		if len(recs) <= produced/2 && !tombstone {
			if fmt.Sprint(last) != fmt.Sprint(latest) {
				t.Fatalf("after the cleaner's pass the compacted topic reads %v last, want %v", last, latest)
			}
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cleaner did not compact %s in 60 s: %d of %d records served", fixtureCompacted, len(recs), produced)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
