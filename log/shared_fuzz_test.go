package log

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

func readMem(fs *errorfs.MemFS, path string) []byte {
	f, err := fs.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	return b
}

func writeMem(fs *errorfs.MemFS, path string, data []byte) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(data)
	return err
}

// FuzzSharedFile replaces the contents of one sealed shared file of a
// small log with the input, then opens the log, reads every partition and
// runs Check and CheckDir. It must not panic, never serve bytes that fail
// batch.Validate, and serve every batch that does not live in the replaced
// file exactly as appended. Seeds: the real file, truncated and flipped.
func FuzzSharedFile(f *testing.F) {
	// meta.db lives on the real file system at dir; the log's files in
	// the MemFS under the same path.
	dir := f.TempDir()
	mem := errorfs.NewMem(1)
	mem.MkdirAll(dir, 0o755)
	o := func(fs *errorfs.MemFS) *Options {
		return &Options{Dir: dir, FS: fs, MinFreeBytes: -1, SharedSegmentBytes: 1 << 10,
			Logger: slog.New(slog.DiscardHandler), RetentionCheckInterval: time.Hour, CheckpointInterval: time.Hour}
	}
	l, err := Open(o(mem))
	if err != nil {
		f.Fatal(err)
	}
	l.CreateTopic("t", TopicConfig{Partitions: 2})
	type rec struct {
		p    int32
		base int64
		data []byte
	}
	var acked []rec
	for i := 0; i < 24; i++ {
		b := mkBatch(1+i%3, fmt.Sprint("v", i))
		base, err := l.Append(context.Background(), "t", int32(i%2), b)
		if err != nil {
			f.Fatal(err)
		}
		acked = append(acked, rec{int32(i % 2), base, b})
	}
	l.Close()
	metaDB, _ := os.ReadFile(filepath.Join(dir, meta.FileName))
	var victim string
	mem.Walk(filepath.Join(dir, sharedDirName), func(path string, size int64) {
		if victim == "" && filepath.Ext(path) == sharedSuffix {
			victim = path
		}
	})
	orig := readMem(mem, victim)
	f.Add(orig)
	f.Add(orig[:len(orig)/2])
	for _, i := range []int{0, 5, 12, 20, 30, 45, 100} {
		if i < len(orig) {
			b := bytes.Clone(orig)
			b[i] ^= 0x04
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := mem.Crash(errorfs.CrashKeepAll)
		if err := writeMem(fs, victim, data); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, meta.FileName), metaDB, 0o600)
		CheckDirFS(fs, dir)
		l, err := Open(o(fs))
		if err != nil {
			return // refusing to open is allowed; panicking is not
		}
		defer l.Close()
		for _, a := range acked {
			b, err := l.Read("t", a.p, a.base, 1)
			if err != nil {
				if !bytes.Contains(orig, a.data) {
					t.Fatalf("%d/%d: read of a batch outside the replaced file: %v", a.p, a.base, err)
				}
				continue
			}
			h, verr := batch.Validate(b)
			if verr != nil {
				t.Fatalf("%d/%d: served bytes failing validation: %v", a.p, a.base, verr)
			}
			if !bytes.Contains(orig, a.data) && (h.BaseOffset != a.base || !bytes.Equal(b[:h.Size()], a.data)) {
				t.Fatalf("%d/%d: served a different batch", a.p, a.base)
			}
		}
		l.Check()
	})
}
