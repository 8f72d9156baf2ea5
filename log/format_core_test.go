package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// A data dir of generation 1 carries no marker: Open writes none, so every
// release reads it as before.
func TestDataFormatGeneration1WritesNoMarker(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, formatName)); !os.IsNotExist(err) {
		t.Fatalf("generation %d wrote %s: %v", DataFormat, formatName, err)
	}
}

// A dir a newer generation made unreadable for this one is refused by Open
// and CheckDir, with a message that says what to do, and nothing in it is
// touched; one a newer generation wrote but this one can still read opens.
func TestDataFormatNewerRefused(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendRecording(t, l, new([]string), 3, "r")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A later generation that older code can still read: opens, the
	// marker stays as it is.
	if _, err := openDataFormat(vfs.Default, dir, DataFormat+1, DataFormatReadableFrom); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, formatName))
	l = testOpen(t, dir, nil)
	if n := len(readAll(t, l, "t", 0)); n != 3 {
		t.Fatalf("read %d records, want 3", n)
	}
	l.Close()
	if after, _ := os.ReadFile(filepath.Join(dir, formatName)); string(after) != string(before) {
		t.Fatal("an older generation rewrote the marker of a newer one")
	}

	// A later generation that this one cannot read.
	if _, err := openDataFormat(vfs.Default, dir, DataFormat+1, DataFormat+1); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		m := map[string]string{}
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				m[p] = string(b)
			}
			return nil
		})
		return m
	}
	was := snapshot()
	_, err := Open(&Options{Dir: dir, MinFreeBytes: -1})
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "upgrade runnel") {
		t.Fatalf("Open of a newer data dir: %v, want ErrNewerFormat saying to upgrade", err)
	}
	if _, err := CheckDir(dir); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("CheckDir of a newer data dir: %v", err)
	}
	now := snapshot()
	if len(now) != len(was) {
		t.Fatalf("refused open changed the dir: %d files, were %d", len(now), len(was))
	}
	for p, b := range was {
		if now[p] != b {
			t.Fatalf("refused open changed %s", p)
		}
	}

	// A marker of a newer layout, and a damaged one, are refused too.
	h := fileHeader(formatMagic, formatVersion+1, 1<<32|1)
	os.WriteFile(filepath.Join(dir, formatName), h, 0o644)
	if _, err := Open(&Options{Dir: dir, MinFreeBytes: -1}); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("marker version %d: %v", formatVersion+1, err)
	}
	h = fileHeader(formatMagic, formatVersion, 1<<32|1)
	h[13] ^= 1
	os.WriteFile(filepath.Join(dir, formatName), h, 0o644)
	if _, err := Open(&Options{Dir: dir, MinFreeBytes: -1}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), formatName) {
		t.Fatalf("damaged marker: %v", err)
	}
}

// markerOf reads dir's data format marker on fs ({1 1} and false without
// one).
func markerOf(t *testing.T, fs vfs.FS, dir string) (dataFormat, bool) {
	t.Helper()
	f, ok, err := readDataFormat(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		f = dataFormat{writtenBy: 1, readableFrom: 1}
	}
	return f, ok
}

// A data dir stays at generation 1 (no marker) while it holds no
// transaction, across reopens; the first transactional batch, appended or
// copied by a mirror (AppendAt), raises it to 2, which generation 1
// refuses and this generation opens.
func TestDataFormatRaisedByFirstTransaction(t *testing.T) {
	ctx := context.Background()
	for _, mirror := range []bool{false, true} {
		t.Run(fmt.Sprintf("mirror=%v", mirror), func(t *testing.T) {
			dir := t.TempDir()
			l := testOpen(t, dir, nil)
			cfg := TopicConfig{Partitions: 2}
			if mirror {
				cfg.Origin = "o"
			}
			if err := l.CreateTopic("t", cfg); err != nil {
				t.Fatal(err)
			}
			var plain, txn []byte
			for i, b := range [][]byte{mkBatch(2, "plain"), pidBatch(7, 0, 0, 1)} {
				b = append([]byte(nil), b...)
				setBaseOffset(b, int64(2*i))
				plain = append(plain, b...)
			}
			for i, b := range [][]byte{txnData(1, 0, 0, 2), batch.Marker(1, 0, false, 1)} {
				b = append([]byte(nil), b...)
				setBaseOffset(b, int64(2*i))
				txn = append(txn, b...)
			}
			put := func(p int32, data []byte) error {
				if mirror {
					return l.AppendAt(ctx, "t", p, data)
				}
				_, err := l.Append(ctx, "t", p, data)
				return err
			}
			if err := put(0, plain); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l = testOpen(t, dir, nil)
			if f, ok := markerOf(t, vfs.Default, dir); ok {
				t.Fatalf("a data dir without transactions has a marker %+v", f)
			}
			if err := put(1, txn); err != nil {
				t.Fatal(err)
			}
			if f, _ := markerOf(t, vfs.Default, dir); f != (dataFormat{writtenBy: 2, readableFrom: 2}) {
				t.Fatalf("after the first transactional batch the marker says %+v, want generation 2 readable from 2", f)
			}
			l.Close()
			if _, err := checkDataFormat(vfs.Default, dir, 1); !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "upgrade runnel") {
				t.Fatalf("generation 1 opening a dir with transactions: %v, want ErrNewerFormat", err)
			}
			l = testOpen(t, dir, nil)
			defer l.Close()
			if n := len(readAll(t, l, "t", 1)); n != 2 {
				t.Fatalf("read %d records of the transactional partition, want 2", n)
			}
		})
	}
}

// setBaseOffset sets the base offset of one batch (for AppendAt).
func setBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[0:8], uint64(off))
}

// A data dir written before transactions raised the data format (a
// partition marked transactional, no marker) is raised at Open.
func TestDataFormatRaisedAtOpenForMarkedPartition(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	if _, err := l.Append(context.Background(), "t", 0, txnData(1, 0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.Remove(filepath.Join(dir, formatName)); err != nil {
		t.Fatal(err)
	}
	l = testOpen(t, dir, nil)
	l.Close()
	if f, _ := markerOf(t, vfs.Default, dir); f.readableFrom != 2 {
		t.Fatalf("marker after Open %+v, want readable from 2", f)
	}
}

// The marker is on stable storage before the first transactional batch
// is written: a power cut at any point of that append (every file system
// operation of it, every crash mode) leaves either no transactional batch
// or the marker, and once the append is acknowledged both.
func TestDataFormatRaisedBeforeTransactionalBatchCrash(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			dir := t.TempDir() // meta.db on the real disk; the log's files on mem
			mem := errorfs.NewMem(1)
			if err := mem.MkdirAllSynced(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			type image struct {
				fs    *errorfs.MemFS
				mode  errorfs.CrashMode
				acked bool
			}
			var (
				mu     sync.Mutex
				armed  bool
				images []image
			)
			snap := func(acked bool) {
				for _, m := range errorfs.CrashModes {
					images = append(images, image{mem.Crash(m), m, acked})
				}
			}
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				mu.Lock()
				defer mu.Unlock()
				if armed {
					snap(false)
				}
				return nil
			}))
			mod := func(o *Options) {
				o.FS = fs
				if shared {
					sharedOn(o)
				}
			}
			l := testOpen(t, dir, mod)
			if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "plain")); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			armed = true
			mu.Unlock()
			if _, err := l.Append(context.Background(), "t", 0, txnData(1, 0, 0, 2)); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			armed = false
			snap(true)
			mu.Unlock()
			l.Close()
			if len(images) < 8 {
				t.Fatalf("%d crash images, want one per operation of the append", len(images))
			}
			for i, im := range images {
				f, _ := markerOf(t, im.fs, dir)
				_, err := checkDataFormat(im.fs, dir, 1)
				gen1Opens := err == nil
				l := testOpen(t, dir, func(o *Options) {
					mod(o)
					o.FS = im.fs
				})
				n := len(readAll(t, l, "t", 0))
				l.Close()
				switch {
				case n > 1 && gen1Opens:
					t.Fatalf("image %d (%v): a transactional batch on disk, marker %+v: generation 1 would open it", i, im.mode, f)
				case im.acked && (n != 3 || f.readableFrom != 2):
					t.Fatalf("image %d (%v) after the ack: %d records, marker %+v; want 3 and readable from 2", i, im.mode, n, f)
				}
			}
		})
	}
}

// A marker that cannot be written fails the first transactional append
// with an error naming the data format; nothing is written, and the
// append succeeds once the marker can be written.
func TestDataFormatRaiseFailureFailsAppend(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	fail.Store(true)
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fail.Load() && op.Kind == errorfs.OpCreate && strings.HasPrefix(filepath.Base(op.Path), formatName) {
			return errors.New("injected: cannot write")
		}
		return nil
	}))
	l := testOpen(t, dir, func(o *Options) { o.FS = fs })
	defer l.Close()
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	_, err := l.Append(context.Background(), "t", 0, txnData(1, 0, 0, 2))
	if err == nil || !strings.Contains(err.Error(), "data format 2") {
		t.Fatalf("append with the marker unwritable: %v, want an error naming data format 2", err)
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 0 {
		t.Fatalf("HWM %d after the refused append, want 0", hwm)
	}
	if _, err := os.Stat(filepath.Join(dir, "t", "0", txnMarkFile)); !os.IsNotExist(err) {
		t.Fatalf("partition marked transactional without the marker: %v", err)
	}
	fail.Store(false)
	if _, err := l.Append(context.Background(), "t", 0, txnData(1, 0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if f, _ := markerOf(t, vfs.Default, dir); f.readableFrom != 2 {
		t.Fatalf("marker %+v, want readable from 2", f)
	}
}
