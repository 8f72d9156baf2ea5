package log_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// TestFsyncSwitchDoesNotAckUnsynced: an append queued under fsync "always"
// whose sync is still running must not become visible (HWM) or be
// acknowledged because the topic was switched to "never" and another append
// came in meanwhile.
func TestFsyncSwitchDoesNotAckUnsynced(t *testing.T) {
	var blocking atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		// Block only the first sync after blocking is set: the commit of
		// the first append (config writes must not wait on it).
		if op.Kind == errorfs.OpSync && blocking.CompareAndSwap(true, false) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	}))
	l, err := rlog.Open(&rlog.Options{Dir: t.TempDir(), FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // runs before Close, also when the test fails early
	if err := l.CreateTopic("t", rlog.TopicConfig{Partitions: 1, Fsync: rlog.FsyncAlways}); err != nil {
		t.Fatal(err)
	}
	mk := func(v string) []byte {
		var b batch.Builder
		b.Add(time.Now().UnixMilli(), nil, []byte(v), nil)
		return b.Bytes()
	}
	var mu sync.Mutex
	var acked []string
	ack := func(name string) func(int64, error) {
		return func(_ int64, err error) {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			acked = append(acked, name)
			mu.Unlock()
		}
	}

	blocking.Store(true)
	l.AppendAsync("t", 0, mk("a"), ack("a"))
	select {
	case <-entered: // the commit of "a" is inside its sync
	case <-time.After(10 * time.Second):
		t.Fatal("no sync started")
	}
	cfg, _ := l.Topic("t")
	c := cfg.Config
	c.Fsync = rlog.FsyncNever
	if err := l.SetTopicConfig("t", c); err != nil {
		t.Fatal(err)
	}
	l.AppendAsync("t", 0, mk("b"), ack("b"))
	time.Sleep(50 * time.Millisecond)
	if _, hwm, _ := l.Offsets("t", 0); hwm != 0 {
		t.Fatalf("HWM %d while the sync of the first append is still running, want 0", hwm)
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("acknowledged %v before the sync finished", acked)
	}
	unblock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n = len(acked)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n != 2 {
		t.Fatalf("acked %d of 2 after the sync finished", n)
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 2 {
		t.Fatalf("HWM %d, want 2", hwm)
	}
}
