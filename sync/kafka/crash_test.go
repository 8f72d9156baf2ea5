package kafka_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest/reexec"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/kafka"
)

// The crash test re-runs this test binary as a child that forwards from a
// real log directory and is then killed with SIGKILL.
const childEnv = "RUNNEL_FORWARD_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	code := m.Run()
	stopBenchBroker()
	os.Exit(code)
}

const crashWindow = 4000

func crashOptions(lg log.Log, broker string, bw int64) forward.Options {
	return forward.Options{
		Log:    lg,
		NodeID: "node-1",
		Site:   "site-a",
		Upstreams: map[string]forward.Upstream{forward.DefaultUpstream: {
			Kind: "kafka", Brokers: []string{broker}, BandwidthBytesPerSec: bw,
		}},
		Routes:              []forward.Route{{Name: "crash", Topics: []string{"c*"}, MaxInFlight: crashWindow}},
		Sinks:               map[string]forward.NewSinkFunc{"kafka": kafka.NewSink},
		CursorFlushInterval: 10 * time.Second, // only the window forces saves
	}
}

// crashChild: spec is "dir|broker".
func crashChild(spec string) int {
	dir, broker, _ := strings.Cut(spec, "|")
	lg, err := log.Open(&log.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open log:", err)
		return 2
	}
	f, err := forward.New(crashOptions(lg, broker, 4<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	if err := f.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Println("forwarding")
	select {} // until killed
}

// TestCrashRestart: kill -9 the forwarder in the middle of a drain, reopen
// the log and restart: nothing lost, order kept, duplicates no more than
// the in-flight window.
func TestCrashRestart(t *testing.T) {
	reexec.SkipIfEmulated(t, "120,000 records are not forwarded within the test's deadline")
	c := newKfake(t)
	dir := t.TempDir()
	lg, err := log.Open(&log.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, lg, "crash", 3, 40000)
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	col := collect(t, c.ListenAddrs(), "crash")

	cmd := reexec.Command("-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir+"|"+c.ListenAddrs()[0])
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, uniq, _ := col.ch.Counts()
		if uniq >= 30000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child forwarded only %d records", uniq)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killed = true
	_, before, _ := col.ch.Counts()
	if before >= 120000 {
		t.Fatalf("the drain finished before the kill (%d records)", before)
	}

	lg2, err := log.Open(&log.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer lg2.Close()
	cur, _ := lg2.Meta().Cursors(forward.CursorPrefix + "crash")
	f, err := forward.New(crashOptions(lg2, c.ListenAddrs()[0], 0))
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	defer f.Close()
	col.waitComplete(t, want, 30*time.Second, f)
	time.Sleep(200 * time.Millisecond)
	dups := col.ch.Verify(t, want)
	t.Logf("killed after %d unique records upstream; saved cursors %v; %d duplicates (window %d)", before, cur, dups, crashWindow)
	if dups > crashWindow {
		t.Errorf("%d duplicates > in-flight window %d", dups, crashWindow)
	}
}

// TestReopen closes the forwarder and the log in the middle of a drain
// and resumes with new instances.
func TestReopen(t *testing.T) {
	c := newKfake(t)
	dir := t.TempDir()
	lg, err := log.Open(&log.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, lg, "reopen", 2, 20000)
	col := collect(t, c.ListenAddrs(), "reopen")
	route := []forward.Route{{Name: "r", Topics: []string{"reopen"}, MaxInFlight: 2000}}
	bw := func(u *forward.Upstream) { u.BandwidthBytesPerSec = 2 << 20 }
	f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: route, up: bw})
	waitAcked(t, f, 5000, 20*time.Second)
	f.Close()
	acked := f.Routes()[0].AckedRecords
	lg.Close()
	lg, err = log.Open(&log.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() }) // after the forwarder's Close
	f = startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: route})
	col.waitComplete(t, want, 20*time.Second, f)
	time.Sleep(100 * time.Millisecond)
	dups := col.ch.Verify(t, want)
	t.Logf("closed after %d acked; %d duplicates", acked, dups)
	if dups != 0 {
		t.Errorf("%d duplicates after a clean close", dups)
	}
}
