package errorfs

import (
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

func TestInjectCounts(t *testing.T) {
	fs := Wrap(NewMem(1), nil)
	must(t, fs.MkdirAll("/d", 0o755))
	f, err := fs.Create("/d/f")
	must(t, err)
	for range 3 {
		f.Write([]byte("x"))
	}
	f.WriteAt([]byte("y"), 0)
	must(t, f.Sync())
	must(t, f.Close())
	must(t, vfs.SyncDir(fs, "/d"))
	if got := fs.Count(OpWrite); got != 3 {
		t.Errorf("writes %d", got)
	}
	if got := fs.CountOf(WriteOps); got != 4 {
		t.Errorf("write ops %d", got)
	}
	if fs.Count(OpSync) != 1 || fs.Count(OpSyncDir) != 1 {
		t.Errorf("syncs %d dir syncs %d", fs.Count(OpSync), fs.Count(OpSyncDir))
	}
	// mkdir, create, 4 writes, sync, close, opendir, syncdir, close
	if fs.Ops() != 11 {
		t.Errorf("ops %d", fs.Ops())
	}
	if fs.CountOf(MutatingOps) != 8 {
		t.Errorf("mutating %d", fs.CountOf(MutatingOps))
	}
}

func TestFailNthSync(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		inj := &FailNth{Kinds: KindsOf(OpSync), N: 2, Persistent: persistent}
		fs := Wrap(NewMem(1), inj)
		must(t, fs.MkdirAll("/d", 0o755))
		f, err := fs.Create("/d/f")
		must(t, err)
		var errs []bool
		for range 4 {
			f.Write([]byte("x"))
			errs = append(errs, f.Sync() != nil)
		}
		want := []bool{false, true, false, false}
		if persistent {
			want = []bool{false, true, true, true}
		}
		for i := range want {
			if errs[i] != want[i] {
				t.Fatalf("persistent=%v: sync failures %v want %v", persistent, errs, want)
			}
		}
		f.Write(nil)
		if err := f.Sync(); persistent && !errors.Is(err, ErrInjected) {
			t.Fatalf("persistent: %v", err)
		}
		if !errors.Is(ErrInjected, syscall.EIO) {
			t.Fatal("ErrInjected is not EIO")
		}
		// Directory syncs are not OpSync.
		must(t, vfs.SyncDir(fs, "/d"))
	}
}

func TestShortWriteAndFilter(t *testing.T) {
	mem := NewMem(1)
	inj := &FailNth{Kinds: WriteOps, N: 1, ShortN: 3, Filter: PathHas(".log")}
	fs := Wrap(mem, inj)
	must(t, fs.MkdirAll("/d", 0o755))
	idx, _ := fs.Create("/d/0.index")
	if _, err := idx.Write([]byte("index")); err != nil {
		t.Fatalf("filtered-out write failed: %v", err)
	}
	seg, _ := fs.Create("/d/0.log")
	n, err := seg.Write([]byte("abcdef"))
	if n != 3 || !errors.Is(err, ErrInjected) {
		t.Fatalf("short write: n=%d err=%v", n, err)
	}
	if got, _ := mem.ReadFile("/d/0.log"); string(got) != "abc" {
		t.Fatalf("after short write: %q", got)
	}
	if inj.Fired() != 1 || inj.Seen() != 1 {
		t.Fatalf("fired %d seen %d", inj.Fired(), inj.Seen())
	}
	if _, err := seg.WriteAt([]byte("Z"), 0); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFull(t *testing.T) {
	mem := NewMem(1)
	df := NewDiskFull(10)
	fs := Wrap(mem, df)
	must(t, fs.MkdirAll("/d", 0o755))
	f, _ := fs.Create("/d/f")
	if _, err := f.Write([]byte("123456")); err != nil {
		t.Fatal(err)
	}
	n, err := f.Write([]byte("789abc"))
	if n != 4 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("crossing write: n=%d err=%v", n, err)
	}
	if _, err := f.Write([]byte("z")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("full: %v", err)
	}
	if err := f.Preallocate(0, 100); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("preallocate when full: %v", err)
	}
	df.Free(5)
	if _, err := f.Write([]byte("vwxyz")); err != nil {
		t.Fatalf("after Free: %v", err)
	}
	if got, _ := mem.ReadFile("/d/f"); string(got) != "123456789avwxyz" {
		t.Fatalf("content %q", got)
	}
	if df.Written() != 15 {
		t.Fatalf("written %d", df.Written())
	}
}

func TestCrasher(t *testing.T) {
	mem := NewMem(1)
	must(t, mem.MkdirAll("/d", 0o755))
	must(t, vfs.SyncDir(mem, "/"))
	var snap *MemFS
	var at Op
	c := &Crasher{Kinds: MutatingOps, At: 4, OnCrash: func(op Op) {
		at = op
		snap = mem.Crash(CrashKeepAll)
	}}
	fs := Wrap(mem, Any(c, &FailNth{Kinds: KindsOf(OpRead), N: 1000}))
	f, err := fs.Create("/d/f") // 1
	must(t, err)
	f.Write([]byte("a"))          // 2
	must(t, f.Sync())             // 3
	_, err = f.Write([]byte("b")) // 4: crash
	if !errors.Is(err, ErrCrashed) || !c.Crashed() {
		t.Fatalf("crash write: %v", err)
	}
	if at.Kind != OpWrite || at.Seq != 4 {
		t.Fatalf("crashed at %v", at)
	}
	if _, err := fs.Stat("/d/f"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("op after crash: %v", err)
	}
	if got, _ := snap.ReadFile("/d/f"); string(got) != "a" {
		t.Fatalf("snapshot %q", got)
	}
	if c.Seen() != 4 {
		t.Fatalf("seen %d", c.Seen())
	}
}

// TestInjectConcurrent exercises the wrapper from many goroutines (-race).
func TestInjectConcurrent(t *testing.T) {
	inj := &FailNth{Kinds: SyncOps, N: 50, Persistent: true}
	fs := Wrap(NewMem(1), inj)
	must(t, fs.MkdirAll("/d", 0o755))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fs.Create("/d/" + string(rune('a'+g)))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for range 20 {
				f.Write([]byte("data"))
				if f.Sync() != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if fs.Count(OpSync) != 160 || failed != 111 || inj.Fired() != 111 {
		t.Fatalf("syncs %d failed %d fired %d", fs.Count(OpSync), failed, inj.Fired())
	}
}

// TestCrasherFailsOpsInFlight: a sync that started before the crash but
// finishes after it must not report success (its ack would cover data the
// snapshot may not hold).
func TestCrasherFailsOpsInFlight(t *testing.T) {
	mem := NewMem(1)
	must(t, mem.MkdirAll("/d", 0o755))
	entered, release := make(chan struct{}), make(chan struct{})
	blocking := Wrap(mem, InjectorFunc(func(op Op) error {
		if op.Kind == OpSync {
			close(entered)
			<-release
		}
		return nil
	}))
	c := &Crasher{Kinds: WriteOps, At: 2, OnCrash: func(Op) { mem.Crash(CrashDropUnsynced) }}
	fs := Wrap(blocking, c)
	f, err := fs.Create("/d/a")
	must(t, err)
	if _, err := f.Write([]byte("x")); err != nil { // write #1
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- f.Sync() }()
	<-entered
	if _, err := f.Write([]byte("y")); !errors.Is(err, ErrCrashed) { // write #2: crash
		t.Fatalf("crash write: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrCrashed) {
		t.Fatalf("sync in flight during the crash returned %v", err)
	}
}
