package log

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// readCountFS counts the bytes read from shared segment files.
type readCountFS struct {
	vfs.FS
	slogBytes atomic.Int64
}

type readCountFile struct {
	vfs.File
	n *atomic.Int64
}

func (f readCountFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(b, off)
	f.n.Add(int64(n))
	return n, err
}

func (f readCountFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	f.n.Add(int64(n))
	return n, err
}

func (fs *readCountFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, sharedSuffix) {
		return f, err
	}
	return readCountFile{f, &fs.slogBytes}, nil
}

func (fs *readCountFS) Open(name string) (vfs.File, error) {
	f, err := fs.FS.Open(name)
	return fs.wrap(name, f, err)
}

func (fs *readCountFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name)
	return fs.wrap(name, f, err)
}

// sharedWorkload appends 600 one-record batches over 8 partitions to
// small shared files and returns what each partition holds.
func sharedWorkload(t *testing.T, l Log) map[int32][]string {
	t.Helper()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 8}); err != nil {
		t.Fatal(err)
	}
	want := map[int32][]string{}
	for i := 0; i < 600; i++ {
		p := int32(i % 8)
		v := fmt.Sprint("v", i)
		if _, err := l.Append(context.Background(), "t", p, mkBatch(1, v)); err != nil {
			t.Fatal(err)
		}
		want[p] = append(want[p], v+"-0")
	}
	return want
}

// scanLittle makes open read 256 bytes of each active virtual segment for
// producer state (16 KiB would be all of these tests' partitions).
func scanLittle(mod func(*Options)) func(*Options) {
	return func(o *Options) { mod(o); o.ProducerStateScanBytes = 256 }
}

func checkWorkload(t *testing.T, l Log, want map[int32][]string) {
	t.Helper()
	for p, vals := range want {
		got := readAll(t, l, "t", p)
		if len(got) != len(vals) {
			t.Fatalf("partition %d: %d records, want %d", p, len(got), len(vals))
		}
		for i, r := range got {
			if string(r.Value) != vals[i] {
				t.Fatalf("partition %d record %d: %q, want %q", p, i, r.Value, vals[i])
			}
		}
	}
}

// extentsInMemory counts the extents held in memory by every virtual
// segment, and the runs.
func extentsInMemory(l Log) (ext, runs int) {
	for _, tp := range l.(*logImpl).topicList() {
		for _, p := range tp.partitions() {
			p.mu.Lock()
			for _, s := range p.segs {
				if s.virt == nil {
					continue
				}
				s.mu.Lock()
				for _, r := range s.virt.runs {
					ext += len(r.ext)
					runs++
				}
				s.mu.Unlock()
			}
			p.mu.Unlock()
		}
	}
	return ext, runs
}

// Rolled shared files get an extent index: their extents leave memory,
// and an open after Close reads no shared file at all, yet serves every
// record.
func TestSharedIndexOpenReadsNoSharedFile(t *testing.T) {
	dir := t.TempDir()
	mod := scanLittle(sharedFilesOf(8 << 10)) // this test's partitions hold ~6 KiB each
	l := testOpen(t, dir, mod)
	want := sharedWorkload(t, l)
	l.(*logImpl).shared.indexPending()
	ext, runs := extentsInMemory(l)
	// Only the active file's entries (at most 8 KiB of ~90-byte entries)
	// may still be in memory.
	if ext > 100 || runs == 0 {
		t.Fatalf("%d extents in memory over %d runs after indexing (600 appends)", ext, runs)
	}
	checkWorkload(t, l, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := sharedFilesIn(t, dir)
	idx, _ := filepath.Glob(filepath.Join(dir, sharedDirName, "*"+sidxSuffix))
	if len(files) < 5 || len(idx) != len(files) {
		t.Fatalf("%d shared files, %d extent indexes", len(files), len(idx))
	}

	total := int64(0)
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	fs := &readCountFS{FS: vfs.Default}
	l = testOpen(t, dir, func(o *Options) { mod(o); o.FS = fs })
	// What open reads of shared files: the batch headers of each
	// partition's last run, for idempotent-producer state.
	if n := fs.slogBytes.Load(); n > total/10 {
		t.Fatalf("open read %d of %d bytes of shared files", n, total)
	}
	if ext, _ := extentsInMemory(l); ext != 0 {
		t.Fatalf("%d extents in memory after open", ext)
	}
	checkWorkload(t, l, want)
	if off, err := l.OffsetForTime("t", 3, 0); err != nil || off != 0 {
		t.Fatalf("OffsetForTime: %d %v", off, err)
	}
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("Check: %+v", d)
	}
	l.Close()
}

// A missing or damaged extent index costs a read of its shared file,
// never a record: open scans a file without an index (and writes one),
// and a read through a damaged section falls back to the file.
func TestSharedIndexLostOrDamaged(t *testing.T) {
	dir := t.TempDir()
	mod := scanLittle(sharedFilesOf(8 << 10))
	l := testOpen(t, dir, mod)
	want := sharedWorkload(t, l)
	l.Close()
	idx, _ := filepath.Glob(filepath.Join(dir, sharedDirName, "*"+sidxSuffix))
	if len(idx) < 4 {
		t.Fatalf("%d extent indexes", len(idx))
	}
	// Lost: the open reads that one file, in full.
	st, _ := os.Stat(strings.TrimSuffix(idx[0], sidxSuffix) + sharedSuffix)
	os.Remove(idx[0])
	// Damaged in a section (the directory is intact): reads fall back.
	data, _ := os.ReadFile(idx[1])
	data[len(data)-2] ^= 0x40
	os.WriteFile(idx[1], data, 0o644)
	// Damaged header: scanned at open.
	data, _ = os.ReadFile(idx[2])
	data[3] ^= 1
	os.WriteFile(idx[2], data, 0o644)

	fs := &readCountFS{FS: vfs.Default}
	l = testOpen(t, dir, func(o *Options) { mod(o); o.FS = fs })
	if n := fs.slogBytes.Load(); n < st.Size() || n > 4*(8<<10) {
		t.Fatalf("open read %d bytes of shared files; want the two files without an intact index (%d bytes for the first)", n, st.Size())
	}
	checkWorkload(t, l, want)
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("Check: %+v", d)
	}
	l.Close()
	// The open rewrote the lost and the damaged-header indexes.
	fs = &readCountFS{FS: vfs.Default}
	l = testOpen(t, dir, func(o *Options) { mod(o); o.FS = fs })
	defer l.Close()
	if n := fs.slogBytes.Load(); n > 8<<10 {
		t.Fatalf("second open read %d bytes of shared files", n)
	}
	checkWorkload(t, l, want)
}

// FuzzSharedIndexSection: a section encodes and decodes back to the same
// entries, and no byte string makes the decoder panic.
func FuzzSharedIndexSection(f *testing.F) {
	f.Add([]byte{24, 100, 0, 1, 4, 200, 0, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeSection(b) // must not panic
		// Entries from the bytes: gaps, lengths and record counts.
		var ents []sharedEnt
		pos, next := int64(sharedHeaderSize+sharedEntryHeader), int64(0)
		for i := 0; i+3 < len(b) && len(ents) < 64; i += 4 {
			e := sharedEnt{fpos: pos + int64(b[i])*20, n: int64(b[i+1]) + 61, base: next + int64(b[i+2]%3)}
			e.next, e.maxTs = e.base+int64(b[i+3])+1, int64(i)
			ents = append(ents, e)
			pos, next = e.fpos+e.n+sharedEntryHeader, e.next
		}
		if len(ents) == 0 {
			return
		}
		k := sharedKey{7, 3}
		buf, locs := encodeSharedIndex(9, pos, map[sharedKey][]sharedEnt{k: ents})
		loc := locs[k]
		got, err := decodeSection(buf[loc.pos : loc.pos+loc.n])
		if err != nil || len(got) != len(ents) {
			t.Fatalf("decode: %d entries, %v; want %d", len(got), err, len(ents))
		}
		for i := range ents {
			if g, w := got[i], ents[i]; g.fpos != w.fpos || g.n != w.n || g.base != w.base || g.next != w.next {
				t.Fatalf("entry %d: %+v, want %+v", i, g, w)
			}
		}
	})
}

// A damaged extent index section and a damaged entry in its shared file,
// in a run that open must split (the partition wrote a segment file in
// between): open goes on, reports the damage, and serves every other
// record.
func TestSharedIndexAndFileDamaged(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	var want []string
	app := func(n int, prefix string) { appendRecording(t, l, &want, n, prefix) }
	for round := 0; round < 2; round++ {
		for i := 0; i < sharedAfterSmallCommits+3; i++ {
			app(1, fmt.Sprint("small", round, i))
		}
		app(4000, fmt.Sprint("big", round)) // over 4 × JournalSmallBytes: its own segment file at once
	}
	l.Close()
	idx, _ := filepath.Glob(filepath.Join(dir, sharedDirName, "*"+sidxSuffix))
	files := sharedFilesIn(t, dir)
	if len(idx) != 1 || len(files) != 1 {
		t.Fatalf("%d indexes, %d shared files", len(idx), len(files))
	}
	data, _ := os.ReadFile(idx[0])
	data[len(data)-1] ^= 1 // the section (the directory is intact)
	os.WriteFile(idx[0], data, 0o644)
	data, _ = os.ReadFile(files[0])
	data[sharedHeaderSize+sharedEntryHeader+70] ^= 1 // the first entry's batch
	os.WriteFile(files[0], data, 0o644)

	l = testOpen(t, dir, sharedOn)
	defer l.Close()
	if len(l.Stats().Damaged) == 0 {
		t.Fatal("no damage reported")
	}
	_, hwm, _ := l.Offsets("t", 0)
	served := 0
	for off := int64(0); off < hwm; off++ {
		b, err := l.Read("t", 0, off, 1)
		if err != nil {
			continue
		}
		recs, err := batch.Records(b[:mustSize(t, b)])
		if err != nil || len(recs) == 0 {
			t.Fatalf("offset %d: %v", off, err)
		}
		for _, r := range recs {
			if r.Offset == off && string(r.Value) != want[off] {
				t.Fatalf("offset %d: %q, want %q", off, r.Value, want[off])
			}
		}
		served++
	}
	if served < int(hwm)-1 {
		t.Fatalf("%d of %d offsets served", served, hwm)
	}
}

func mustSize(t *testing.T, b []byte) int {
	h, err := batch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.Size()
}
