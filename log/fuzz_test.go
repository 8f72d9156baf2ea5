package log_test

// FuzzSegmentRecovery replaces one file of a small log (a .log segment or
// one of its indexes, chosen by the first input byte) with the rest of the
// input, then opens the log and reads everything. It must not panic, must
// never serve bytes that fail batch.Validate, and must serve every batch
// that lives outside the replaced file exactly as appended (an index is
// rebuildable, so with an index replaced every batch must be served).
//
// Seeds: testdata/fuzz/FuzzSegmentRecovery (the real files, truncated and
// bit-flipped) plus the ones added below; they run in every `go test`.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// fuzzLog is the template log the fuzz target damages.
type fuzzLog struct {
	dir    string
	mem    *errorfs.MemFS
	metaDB []byte
	files  []segFile // sorted by path
	w      *workload
	out    *outcome
}

var (
	fuzzOnce sync.Once
	fuzzTmpl *fuzzLog
	fuzzErr  error
)

// fuzzTemplate builds (once per process) a closed log of one partition
// with several segments under a fixed path, so seeds stay meaningful.
func fuzzTemplate(f *testing.F) *fuzzLog {
	fuzzOnce.Do(func() {
		// Fuzz workers are killed without running Cleanup: name the
		// directory by pid and remove those of dead processes.
		root := os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			root = "/dev/shm"
		}
		old, _ := filepath.Glob(filepath.Join(root, "runnel-fuzz-*"))
		for _, d := range old {
			pid := strings.TrimPrefix(filepath.Base(d), "runnel-fuzz-")
			if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
				os.RemoveAll(d)
			}
		}
		base := filepath.Join(root, fmt.Sprint("runnel-fuzz-", os.Getpid()))
		os.RemoveAll(base)
		f.Cleanup(func() { os.RemoveAll(base) })
		dir := filepath.Join(base, "data") // MemFS path; meta.db lives on the real one
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fuzzErr = err
			return
		}
		w := newWorkload(99, 24)
		w.topics = []wlTopic{{"f", log.TopicConfig{Partitions: 1, SegmentBytes: 1500, RetentionAge: -1}}}
		for i := range w.steps {
			w.steps[i].tp = tp{"f", 0}
		}
		mem := newMemFS(99, dir)
		l, out := w.run(testOptions(dir, mem, modeNoJournal))
		if out.err != nil {
			fuzzErr = out.err
			return
		}
		if err := l.Close(); err != nil {
			fuzzErr = err
			return
		}
		metaDB, err := os.ReadFile(filepath.Join(dir, meta.FileName))
		if err != nil {
			fuzzErr = err
			return
		}
		hwm := map[tp]int64{{"f", 0}: expect(out, tp{"f", 0}).ackedEnd}
		fuzzTmpl = &fuzzLog{dir: dir, mem: mem, metaDB: metaDB, files: segmentFiles(nil, mem, dir, hwm), w: w, out: out}
	})
	if fuzzErr != nil {
		f.Fatalf("fuzz template: %v", fuzzErr)
	}
	return fuzzTmpl
}

func FuzzSegmentRecovery(f *testing.F) {
	tl := fuzzTemplate(f)
	if len(tl.files) < 4 {
		f.Fatalf("template has too few segment files: %d", len(tl.files))
	}
	for i, sf := range tl.files {
		content, err := tl.mem.ReadFile(sf.path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(i)}, content...))
		if len(content) > 10 {
			f.Add(append([]byte{byte(i)}, content[:len(content)/2]...))
			c := append([]byte(nil), content...)
			c[len(c)/3] ^= 0x10
			f.Add(append([]byte{byte(i)}, c...))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := fuzzSegmentOnce(tl, data); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzSegmentOnce is the body of FuzzSegmentRecovery.
func fuzzSegmentOnce(tl *fuzzLog, data []byte) error {
	{
		if len(data) == 0 || len(data) > 1<<16 {
			return nil
		}
		target := tl.files[int(data[0])%len(tl.files)]
		fs := tl.mem.Crash(errorfs.CrashKeepAll)
		fh, err := fs.Create(target.path)
		if err != nil {
			return err
		}
		fh.Write(data[1:])
		fh.Sync()
		fh.Close()

		l, err := reopen(tl.dir, tl.metaDB, fs, modeNoJournal)
		if err != nil {
			return nil // refusing to open is allowed; panicking is not
		}
		defer l.Close()
		p := tp{"f", 0}
		start, hwm, err := l.Offsets(p.topic, p.part)
		if err != nil {
			return nil
		}
		if start < 0 || hwm < start {
			return fmt.Errorf("Offsets = %d, %d", start, hwm)
		}
		exp := expect(tl.out, p)
		// Read everything the log is willing to serve.
		off, reads := start, 0
		for off < hwm && reads < 1000 {
			reads++
			b, err := l.Read(p.topic, p.part, off, 1<<14)
			if err != nil || len(b) == 0 {
				off++
				continue
			}
			hs, verr := batch.ValidateAll(b)
			if verr != nil {
				return fmt.Errorf("Read(%d) served bytes that fail validation: %v", off, verr)
			}
			next := off + 1
			pos := 0
			for _, h := range hs {
				raw := b[pos : pos+h.Size()]
				pos += h.Size()
				if want, ok := exp.byBase[h.BaseOffset]; ok && h.LastOffset() >= off && !bytes.Equal(raw, want) && outside(target, h.BaseOffset) {
					return fmt.Errorf("batch %d (outside the replaced %s) served altered", h.BaseOffset, filepath.Base(target.path))
				}
				next = max(next, h.LastOffset()+1)
			}
			off = next
		}
		// Every batch outside the replaced file is served exactly.
		for _, a := range exp.ackedList {
			if !outside(target, a.base) {
				continue
			}
			b, err := l.Read(p.topic, p.part, a.base, 1)
			if err != nil {
				return fmt.Errorf("Read(%d) outside the replaced %s: %v", a.base, filepath.Base(target.path), err)
			}
			h, verr := batch.Validate(b)
			if verr != nil || h.BaseOffset != a.base || !bytes.Equal(b[:h.Size()], a.data) {
				return fmt.Errorf("Read(%d) outside the replaced %s served something else (%v)", a.base, filepath.Base(target.path), verr)
			}
		}
		l.Check()
		l.Stats()
	}
	return nil
}

// outside reports whether offset lives outside the data replaced in f: any
// offset when f is an index (rebuildable), offsets of other segments when f
// is a .log.
func outside(f segFile, offset int64) bool {
	if f.index || !strings.HasSuffix(f.path, ".log") {
		return true
	}
	return offset < f.base || offset >= f.end
}
