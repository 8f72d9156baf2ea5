package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestIntegrationKafkaStreamsExactlyOnce runs a Kafka Streams application
// (testdata/streams: kafka-streams from Maven Central, built with Maven)
// with processing.guarantee=exactly_once_v2 against the server. It counts
// sensor readings per sensor in a persistent state store behind a
// repartition topic and writes the running counts to an output topic. The
// readings are produced first (acks=all); while the application works
// through them the server is kill -9'd twice and restarted on the same
// data and ports, the second time together with the application, which is
// started again (as it is whenever it stops in error). At the end a
// read_committed consumer sees every sensor's count exact: no reading
// lost, none counted twice. The application emits a count for every
// reading, so the committed counts of a sensor, read through the crashes
// and again from the beginning afterwards, are exactly 1, 2, 3, ... in
// order (an aborted transaction's counts are never seen).
//
// It needs transactions (Streams' exactly-once producers: InitProducerId
// with a transactional id, AddPartitionsToTxn, TxnOffsetCommit, EndTxn and
// read_committed fetches): the acceptance test of transactions.
func TestIntegrationKafkaStreamsExactlyOnce(t *testing.T) {
	needTool(t, "java")
	needTool(t, "mvn")
	srv := startServer(t, 1)
	appDir := buildStreamsApp(t)

	const (
		sensors, perSensor = 20, 100
		total              = sensors * perSensor
		input, output      = "it-readings", "it-sensor-counts"
	)
	mustCLI(t, "", "topic", "create", input, "--partitions", "3", "--brokers", srv.Addr())
	mustCLI(t, "", "topic", "create", output, "--partitions", "3", "--brokers", srv.Addr())

	// The readings: keyed by the gateway that sent them, the sensor in the
	// value (the application re-keys by sensor).
	pcl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic(input),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range perSensor {
		for s := range sensors {
			recs = append(recs, &kgo.Record{
				Key:   fmt.Appendf(nil, "gw-%d", (s+i)%3),
				Value: fmt.Appendf(nil, "sensor-%02d %d.%d", s, 20+i%10, s),
			})
		}
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	err = pcl.ProduceSync(pctx, recs...).FirstErr()
	pcancel()
	pcl.Close()
	if err != nil {
		t.Fatalf("produce %d readings: %v", total, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	app := &streamsApp{t: t, dir: appDir, bootstrap: srv.Addr(),
		state: filepath.Join(t.TempDir(), "state"), log: filepath.Join(t.TempDir(), "app.log"),
		args: []string{"it-sensor-counts-app", input, output}, delayMs: "8"}
	t.Cleanup(app.kill9)
	app.start()

	// A read_committed consumer follows the counts from the beginning of
	// the output topic through the crashes.
	committed := newCountReader(t, srv.Addr(), output)
	defer committed.close()
	kills := []int{total * 20 / 100, total * 55 / 100} // committed readings at which the server is killed
	restarts, stalled := 0, 0                          // stalled: exits in a row with no count committed in between
	startedAt := 0                                     // counts committed when the application last started
	done := func() bool {
		if len(kills) > 0 || len(committed.latest) != sensors {
			return false
		}
		for _, n := range committed.latest {
			if n != perSensor {
				return false
			}
		}
		return true
	}
	for !done() {
		if ctx.Err() != nil {
			t.Fatalf("counts not exact after %v (%d kills left, %d application restarts): %s\n%s\n--- server log ---\n%s",
				4*time.Minute, len(kills), restarts, committed.summary(perSensor), app.logTail(), srv.LogTail())
		}
		if !app.running() {
			restarts++
			if stalled++; committed.sum() > startedAt {
				stalled = 1
			}
			if stalled >= 2 || restarts > 8 {
				t.Fatalf("the application stopped %d times (%d in a row with nothing committed): %s\nits errors:\n%s\n%s\n--- server log ---\n%s",
					restarts, stalled, committed.summary(perSensor), app.errors(), app.logTail(), srv.LogTail())
			}
			t.Logf("application exited (%s); starting it again", app.exitStatus())
			app.start()
			startedAt = committed.sum()
		}
		committed.poll(ctx, 300*time.Millisecond)
		for k, n := range committed.latest {
			if n > perSensor {
				t.Fatalf("%s counted %d readings of %d (counted twice)\n%s\n%s", k, n, perSensor, committed.summary(perSensor), app.logTail())
			}
		}
		if len(kills) > 0 && committed.sum() >= kills[0] {
			second := len(kills) == 1
			t.Logf("kill -9 of the server at %d of %d readings counted (committed)%s", committed.sum(), total,
				map[bool]string{true: ", and of the application", false: ""}[second])
			srv.Kill9(t)
			if second {
				app.kill9()
			}
			time.Sleep(500 * time.Millisecond)
			srv.Restart(t)
			if second {
				app.start()
			}
			kills = kills[1:]
		}
	}
	if committed.sum() != total {
		t.Fatalf("the counts followed add up to %d, want %d", committed.sum(), total)
	}
	if committed.errs != "" {
		t.Errorf("committed counts read through the crashes: %s", committed.errs)
	}
	app.stop()

	// A fresh read_committed consumer from the beginning sees the same.
	final := newCountReader(t, srv.Addr(), output)
	defer final.close()
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	for fctx.Err() == nil && final.sum() < total {
		final.poll(fctx, 300*time.Millisecond)
	}
	final.poll(fctx, 2*time.Second) // nothing more after the exact counts
	if final.sum() != total || len(final.latest) != sensors || final.errs != "" {
		t.Fatalf("read_committed from the beginning: %s %s\n%s", final.summary(perSensor), final.errs, app.logTail())
	}
	// Streams deletes the consumed records of its repartition topic
	// (DeleteRecords); a server that does not serve it keeps them all
	// (runnel: until retention), which the log start offsets show.
	t.Logf("repartition topic it-sensor-counts-app-by-sensor-repartition: log start offsets %v",
		logStartOffsets(srv.Addr(), "it-sensor-counts-app-by-sensor-repartition", 3))
	t.Logf("%d sensors × %d readings counted exactly once across 2 kill -9 of the server and %d application restarts (%d count updates read)",
		sensors, perSensor, restarts, final.updates)
}

// logStartOffsets lists the first offset of each partition of topic
// (ListOffsets, earliest), or the error.
func logStartOffsets(addr, topic string, partitions int32) any {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -2
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	var out []int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return err
			}
			out = append(out, rp.Offset)
		}
	}
	return out
}

// buildStreamsApp builds testdata/streams with Maven (once per source
// version, cached under ~/.cache/runnel) and returns its directory.
func buildStreamsApp(t *testing.T) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(filepath.Dir(self), "testdata", "streams", "build.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build the Kafka Streams application: %v\n%s", err, tail(stderr.String(), 4000))
	}
	return strings.TrimSpace(string(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]))
}

// streamsApp is the Kafka Streams application's JVM.
type streamsApp struct {
	t                          *testing.T
	dir, bootstrap, state, log string
	args                       []string // application id, input, output
	delayMs                    string
	cmd                        *exec.Cmd
	done                       chan struct{}
}

func (a *streamsApp) start() {
	a.t.Helper()
	lf, err := os.OpenFile(a.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cp := filepath.Join(a.dir, "classes") + string(os.PathListSeparator) + filepath.Join(a.dir, "libs", "*")
	args := []string{"-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", cp, "io.runnel.it.SensorCounts", a.bootstrap}
	args = append(append(args, a.args...), a.state, a.delayMs)
	cmd := exec.Command("java", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("start the Kafka Streams application: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	a.cmd, a.done = cmd, done
}

func (a *streamsApp) running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

func (a *streamsApp) exitStatus() string {
	if a.cmd == nil || a.cmd.ProcessState == nil {
		return "running"
	}
	return a.cmd.ProcessState.String()
}

// kill9 crashes the application (SIGKILL) and waits for it to be gone.
func (a *streamsApp) kill9() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Kill()
	<-a.done
}

// stop ends the application with SIGTERM (Streams closes cleanly).
func (a *streamsApp) stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		a.kill9()
	}
}

// errors are the distinct error and exception lines of the application's
// log (the first 20).
func (a *streamsApp) errors() string {
	b, _ := os.ReadFile(a.log)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "] "); strings.HasPrefix(l, "[") && i > 0 {
			l = l[i+2:] // without the time stamp
		}
		if (strings.HasPrefix(l, "ERROR ") || strings.Contains(l, "Exception")) && !strings.HasPrefix(strings.TrimSpace(l), "at ") &&
			!slices.Contains(out, l) && len(out) < 20 {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (a *streamsApp) logTail() string {
	b, _ := os.ReadFile(a.log)
	return "--- Kafka Streams application log ---\n" + tail(string(b), 8000)
}

// countReader follows per-sensor counts (8-byte big-endian longs keyed by
// sensor) with a read_committed consumer from the beginning of the topic,
// noting every count that is not the sensor's previous one plus 1.
type countReader struct {
	cl      *kgo.Client
	latest  map[string]int64
	updates int
	errs    string // counts that did not follow the previous one by 1 (the first few)
	nerrs   int
}

func (r *countReader) bad(format string, args ...any) {
	if r.nerrs++; r.nerrs <= 10 {
		r.errs += fmt.Sprintf(format, args...)
	} else if r.nerrs == 11 {
		r.errs += " ..."
	}
}

func newCountReader(t *testing.T, addr, topic string) *countReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return &countReader{cl: cl, latest: map[string]int64{}}
}

func (r *countReader) close() { r.cl.Close() }

// poll reads what arrives within d.
func (r *countReader) poll(ctx context.Context, d time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	fs := r.cl.PollFetches(pctx)
	fs.EachRecord(func(rec *kgo.Record) {
		r.updates++
		k := string(rec.Key)
		if len(rec.Value) != 8 {
			r.bad(" %s: value of %d bytes at %d/%d;", k, len(rec.Value), rec.Partition, rec.Offset)
			return
		}
		n := int64(binary.BigEndian.Uint64(rec.Value))
		if prev := r.latest[k]; n != prev+1 {
			r.bad(" %s: count %d after %d at %d/%d;", k, n, prev, rec.Partition, rec.Offset)
		}
		r.latest[k] = n
	})
}

func (r *countReader) sum() int {
	s := 0
	for _, n := range r.latest {
		s += int(n)
	}
	return s
}

// summary lists the sensors whose count is not want.
func (r *countReader) summary(want int64) string {
	var bad []string
	for k, n := range r.latest {
		if n != want {
			bad = append(bad, fmt.Sprintf("%s=%d", k, n))
		}
	}
	slices.Sort(bad)
	return fmt.Sprintf("%d sensors seen, %d readings counted, %d count updates read; counts not %d: %v; %d out of sequence:%s",
		len(r.latest), r.sum(), r.updates, want, bad, r.nerrs, r.errs)
}
