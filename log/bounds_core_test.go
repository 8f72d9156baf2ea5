package log

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

// The files open reads whole into memory are bounded by the options that
// size them, so the buffers fit a 32-bit address space; segments are
// bounded by the u32 positions of their index.
func TestOptionsBoundFileSizes(t *testing.T) {
	ok := []Options{
		{Dir: "d", SharedSegmentBytes: maxSharedSegmentBytes, JournalMaxBytes: maxJournalMaxBytes},
		{Dir: "d", Defaults: TopicConfig{SegmentBytes: maxSegmentBytes}},
	}
	for _, o := range ok {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	bad := []Options{
		{Dir: "d", SharedSegmentBytes: maxSharedSegmentBytes + 1},
		{Dir: "d", JournalMaxBytes: maxJournalMaxBytes + 1},
		{Dir: "d", SharedSegmentBytes: 5 << 30},
		{Dir: "d", Defaults: TopicConfig{SegmentBytes: maxSegmentBytes + 1}},
		{Dir: "d", Defaults: TopicConfig{SegmentBytes: 5 << 30}},
	}
	for _, o := range bad {
		if err := o.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("shared %d journal %d segment %d: %v, want ErrInvalidConfig", o.SharedSegmentBytes, o.JournalMaxBytes, o.Defaults.SegmentBytes, err)
		}
	}
}

// sparseFile makes path a sparse file of size bytes (no disk blocks).
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// A file read whole that is larger than any the log writes (past 2 GiB
// and 4 GiB here, sparse) is reported as damage: make of its size would
// panic in a 32-bit int, and allocate gigabytes on a 64-bit box.
func TestReadWholeRefusesHugeFiles(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{maxReadWhole + 1, 3 << 30, 5 << 30} {
		p := filepath.Join(dir, "huge.index")
		sparseFile(t, p, size)
		if _, err := readWhole(vfs.Default, p); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
			t.Fatalf("readWhole of a %d-byte file: %v, want ErrCorrupt naming it", size, err)
		}
	}
}

// A shared file or journal grown past every bound (here a sparse 5 GiB
// shared file without its extent index, so open must scan it, and a sparse
// 3 GiB journal) fails open with an error naming the file: never a panic,
// never an attempt to read it whole.
func TestOpenRefusesHugeSharedFileAndJournal(t *testing.T) {
	for _, which := range []string{"shared", "journal"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			mod := sharedOn
			if which == "journal" {
				mod = nil // small commits go through the journal
			}
			l := testOpen(t, dir, mod)
			if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			var want []string
			appendRecording(t, l, &want, 10, "r")
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var p string
			switch which {
			case "shared":
				files := sharedFilesIn(t, dir)
				if len(files) == 0 {
					t.Fatal("no shared file")
				}
				p = files[len(files)-1]
				os.Remove(strings.TrimSuffix(p, sharedSuffix) + ".sidx")
				sparseFile(t, p, 5<<30)
			case "journal":
				p = filepath.Join(dir, "journal")
				sparseFile(t, p, 3<<30)
			}
			o := &Options{Dir: dir, MinFreeBytes: -1}
			if l, err := Open(o); err == nil {
				l.Close()
				t.Fatalf("opened a data dir with a %s file of gigabytes", which)
			} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(p)) {
				t.Fatalf("open: %v, want ErrCorrupt naming %s", err, p)
			}
		})
	}
}
