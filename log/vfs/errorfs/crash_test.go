package errorfs

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

// durableDir makes /d exist on stable storage.
func durableDir(t *testing.T, fs *MemFS) {
	t.Helper()
	must(t, fs.MkdirAll("/d", 0o755))
	must(t, vfs.SyncDir(fs, "/"))
	must(t, vfs.SyncDir(fs, "/d"))
}

func exists(fs vfs.FS, name string) bool {
	_, err := fs.Stat(name)
	return err == nil
}

func TestCrashDropUnsynced(t *testing.T) {
	fs := NewMem(1)
	durableDir(t, fs)

	// Synced data and entry: survives.
	writeFile(t, fs, "/d/synced", []byte("abc"), true)
	// Synced data, entry never synced: vanishes.
	must(t, vfs.SyncDir(fs, "/d"))
	f, err := fs.Create("/d/synced")
	must(t, err)
	f.Write([]byte("0123"))
	must(t, f.Sync())
	f.Write([]byte("4567")) // unsynced tail
	f.Close()
	writeFile(t, fs, "/d/noentry", []byte("x"), true)
	// Entry synced, data not: file is empty.
	writeFile(t, fs, "/d/nodata", []byte("y"), false)
	must(t, fs.MkdirAll("/d/sub", 0o755))
	writeFile(t, fs, "/d/sub/inner", []byte("z"), true)
	must(t, vfs.SyncDir(fs, "/d/sub")) // sub's own entries synced, but sub not in /d's synced entries
	// A rename after the last dir sync reverts.
	writeFile(t, fs, "/d/old", []byte("r"), true)
	crash := fs.Crash(CrashDropUnsynced)
	for _, c := range []struct {
		name string
		want string // "" = must not exist
	}{
		{"/d/synced", "0123"},
		{"/d/noentry", ""},
		{"/d/nodata", ""},
		{"/d/sub/inner", ""},
		{"/d/old", ""},
	} {
		if c.want == "" {
			if exists(crash, c.name) {
				t.Errorf("%s survived the crash", c.name)
			}
			continue
		}
		if got := readFile(t, crash, c.name); string(got) != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}

	// Now sync the dir: entries become durable, data as synced.
	must(t, vfs.SyncDir(fs, "/d"))
	must(t, fs.Rename("/d/old", "/d/new"))
	crash = fs.Crash(CrashDropUnsynced)
	checks := map[string]string{"/d/noentry": "x", "/d/nodata": "", "/d/sub/inner": "z", "/d/old": "r"}
	for name, want := range checks {
		if got := readFile(t, crash, name); string(got) != want {
			t.Errorf("after dir sync: %s = %q, want %q", name, got, want)
		}
	}
	if exists(crash, "/d/new") {
		t.Error("unsynced rename target survived")
	}
	// The rename made durable.
	must(t, vfs.SyncDir(fs, "/d"))
	crash = fs.Crash(CrashDropUnsynced)
	if exists(crash, "/d/old") || string(readFile(t, crash, "/d/new")) != "r" {
		t.Error("synced rename not durable")
	}
	if crash.Unsynced("/") {
		t.Error("a crashed FS has unsynced state")
	}
}

func TestCrashModesOnTail(t *testing.T) {
	synced := []byte("SYNCED--")
	w1, w2 := []byte("first-write-"), []byte("second-write-0123456789")
	setup := func(seed uint64) *MemFS {
		fs := NewMem(seed)
		durableDir(t, fs)
		f, err := fs.Create("/d/seg")
		must(t, err)
		f.Write(synced)
		must(t, f.Sync())
		must(t, vfs.SyncDir(fs, "/d"))
		f.Write(w1)
		f.Write(w2)
		f.Close()
		return fs
	}
	full := append(append(append([]byte(nil), synced...), w1...), w2...)

	if got := readFile(t, setup(1).Crash(CrashDropUnsynced), "/d/seg"); !bytes.Equal(got, synced) {
		t.Errorf("drop: %q", got)
	}
	if got := readFile(t, setup(1).Crash(CrashKeepAll), "/d/seg"); !bytes.Equal(got, full) {
		t.Errorf("keep-all: %q", got)
	}
	zero := readFile(t, setup(1).Crash(CrashZeroTail), "/d/seg")
	if len(zero) != len(full) || !bytes.Equal(zero[:len(synced)], synced) ||
		!bytes.Equal(zero[len(synced):], make([]byte, len(full)-len(synced))) {
		t.Errorf("zero-tail: %q", zero)
	}
	lengths := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		got := readFile(t, setup(seed).Crash(CrashTornWrite), "/d/seg")
		base := len(synced) + len(w1)
		if len(got) < base || len(got) >= len(full) {
			t.Fatalf("torn: length %d outside [%d,%d)", len(got), base, len(full))
		}
		if !bytes.Equal(got, full[:len(got)]) {
			t.Fatalf("torn: %q is not a prefix of %q", got, full)
		}
		lengths[len(got)-base] = true
	}
	if len(lengths) < len(w2)/2 {
		t.Errorf("torn prefixes not varied: %v", lengths)
	}
}

func TestCrashTruncateAndOverwrite(t *testing.T) {
	fs := NewMem(3)
	durableDir(t, fs)
	writeFile(t, fs, "/d/f", []byte("0123456789"), true)
	must(t, vfs.SyncDir(fs, "/d"))
	f, err := fs.OpenReadWrite("/d/f")
	must(t, err)
	must(t, f.Truncate(4))
	f.WriteAt([]byte("AB"), 6)
	f.Close()
	if got := readFile(t, fs.Crash(CrashDropUnsynced), "/d/f"); string(got) != "0123456789" {
		t.Errorf("drop: %q", got)
	}
	if got := readFile(t, fs.Crash(CrashKeepAll), "/d/f"); string(got) != "0123\x00\x00AB" {
		t.Errorf("keep-all: %q", got)
	}
	if got := readFile(t, fs.Crash(CrashZeroTail), "/d/f"); string(got) != "01234567" {
		t.Errorf("zero-tail: %q", got)
	}
	got := readFile(t, fs.Crash(CrashTornWrite), "/d/f")
	if len(got) < 4 || len(got) > 7 || string(got[:4]) != "0123" {
		t.Errorf("torn: %q", got)
	}
}

func TestCrashCloneIsIndependent(t *testing.T) {
	fs := NewMem(1)
	durableDir(t, fs)
	f, err := fs.Create("/d/f")
	must(t, err)
	f.Write([]byte("a"))
	must(t, f.Sync())
	must(t, vfs.SyncDir(fs, "/d"))
	c := fs.Crash(CrashKeepAll)
	f.Write([]byte("b"))
	must(t, f.Sync())
	if got := readFile(t, c, "/d/f"); string(got) != "a" {
		t.Fatalf("clone changed by the original: %q", got)
	}
	g, err := c.OpenReadWrite("/d/f")
	must(t, err)
	g.WriteAt([]byte("Z"), 0)
	g.Close()
	if got := readFile(t, fs, "/d/f"); string(got) != "ab" {
		t.Fatalf("original changed by the clone: %q", got)
	}
	if fs.Unsynced("/") {
		t.Fatal("original unsynced")
	}
	if !c.Unsynced("/d") {
		t.Fatal("clone write not seen as unsynced")
	}
}

func TestFlipBit(t *testing.T) {
	fs := NewMem(1)
	durableDir(t, fs)
	writeFile(t, fs, "/d/f", []byte{0, 0, 0}, true)
	must(t, vfs.SyncDir(fs, "/d"))
	must(t, fs.FlipBit("/d/f", 1, 3))
	for _, mode := range CrashModes {
		if got := readFile(t, fs.Crash(mode), "/d/f"); !bytes.Equal(got, []byte{0, 8, 0}) {
			t.Errorf("%v: %v", mode, got)
		}
	}
	for _, bad := range []struct {
		off int64
		bit uint
	}{{3, 0}, {-1, 0}, {0, 8}} {
		if err := fs.FlipBit("/d/f", bad.off, bad.bit); err == nil {
			t.Errorf("FlipBit(%d,%d) accepted", bad.off, bad.bit)
		}
	}
	if err := fs.FlipBit("/d/missing", 0, 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestCrashConcurrent snapshots while other goroutines write (run with -race).
func TestCrashConcurrent(t *testing.T) {
	fs := NewMem(7)
	durableDir(t, fs)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "/d/f" + string(rune('0'+g))
			f, err := fs.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range 200 {
				f.Write([]byte{byte(i)})
				if i%10 == 0 {
					f.Sync()
					vfs.SyncDir(fs, "/d")
				}
			}
		}()
	}
	for range 50 {
		for _, m := range CrashModes {
			c := fs.Crash(m)
			c.Walk("/", func(string, int64) {})
		}
	}
	wg.Wait()
	// Every byte of each file is its index: a crash snapshot holds a prefix
	// (or zeros past the synced part under zero-tail).
	for _, m := range CrashModes {
		c := fs.Crash(m)
		c.Walk("/d", func(p string, size int64) {
			b := readFile(t, c, p)
			for i, v := range b {
				if v != byte(i) && !(m == CrashZeroTail && v == 0) {
					t.Fatalf("%v %s: byte %d = %d", m, p, i, v)
				}
			}
		})
	}
}

// TestFailSyncLosesData: after a failed sync, a later successful sync does
// not persist the bytes written before the failure (Linux fsyncgate).
func TestFailSyncLosesData(t *testing.T) {
	mem := NewMem(1)
	durableDir(t, mem)
	fs := Wrap(mem, LinuxSyncFailure(mem, &FailNth{Kinds: KindsOf(OpSync), N: 2}))
	f, err := fs.Create("/d/f")
	must(t, err)
	must(t, vfs.SyncDir(fs, "/d"))
	f.Write([]byte("aaaa"))
	must(t, f.Sync()) // sync 1 ok
	f.Write([]byte("bbbb"))
	if err := f.Sync(); err == nil { // sync 2 fails: "bbbb" dropped
		t.Fatal("sync 2 did not fail")
	}
	if err := f.Sync(); err != nil { // retry "succeeds"
		t.Fatal(err)
	}
	if got := readFile(t, fs, "/d/f"); string(got) != "aaaabbbb" {
		t.Fatalf("page cache: %q", got)
	}
	if got := readFile(t, mem.Crash(CrashDropUnsynced), "/d/f"); string(got) != "aaaa" {
		t.Fatalf("after retry-and-pretend and a crash: %q", got)
	}
	f.Write([]byte("cccc"))
	must(t, f.Sync())
	if got := readFile(t, mem.Crash(CrashDropUnsynced), "/d/f"); string(got) != "aaaa\x00\x00\x00\x00cccc" {
		t.Fatalf("lost range after a later sync: %q", got)
	}
	f.WriteAt([]byte("BB"), 4) // rewriting part of the lost range heals it
	must(t, f.Sync())
	if got := readFile(t, mem.Crash(CrashDropUnsynced), "/d/f"); string(got) != "aaaaBB\x00\x00cccc" {
		t.Fatalf("after rewrite: %q", got)
	}
}
