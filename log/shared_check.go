package log

// Checking shared segment files (runnel check, Check): entries, seals
// and the batches in them.

import (
	"io"
	"os"
	"path/filepath"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// checkSharedFiles verifies shared files without changing anything: every
// entry's CRC and batches. size gives the bytes to check of a file (false:
// skip it); bad bytes with no valid entry after them are a torn tail (not
// damage) when torn says so for their position. It also returns, per
// partition, the offset ranges the entries hold.
func checkSharedFiles(fs vfs.FS, dataDir string, size func(seq uint64, fileSize int64) (int64, bool), torn func(seq uint64, pos int64) bool) ([]Damage, map[sharedKey][][2]int64) {
	dir := filepath.Join(dataDir, sharedDirName)
	names, err := fs.List(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return []Damage{{File: sharedDirName, Reason: "cannot list: " + err.Error()}}, nil
	}
	var out []Damage
	ranges := map[sharedKey][][2]int64{}
	for _, n := range names {
		seq, ok := parseSharedName(n)
		if !ok {
			continue
		}
		rel := filepath.Join(sharedDirName, n)
		f, err := fs.Open(filepath.Join(dir, n))
		if err != nil {
			if !os.IsNotExist(err) {
				out = append(out, Damage{File: rel, Reason: "cannot open: " + err.Error()})
			}
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
		f.Close()
		if err != nil {
			out = append(out, Damage{File: rel, Reason: "cannot read: " + err.Error()})
			continue
		}
		limit, ok := size(seq, int64(len(data)))
		if !ok {
			continue
		}
		data = data[:min(limit, int64(len(data)))]
		seed, ok := checkSharedHeader(data, seq)
		if !ok {
			if len(data) > 0 && !torn(seq, 0) {
				out = append(out, Damage{File: rel, Offset: 0, Reason: "bad shared file header"})
			}
			continue
		}
		walkEntries(data, seed, nil, func(pos int64, e sharedEntry) {
			if err := validateEntryBatches(data[pos+sharedEntryHeader : pos+sharedEntryHeader+e.n]); err != nil {
				out = append(out, Damage{File: rel, Offset: pos, Reason: "bad batch in shared entry: " + err.Error()})
			}
			ranges[e.key] = append(ranges[e.key], [2]int64{e.base, e.next})
		}, func(pos, next int64) bool {
			if next < 0 && torn(seq, pos) {
				return false
			}
			out = append(out, Damage{File: rel, Offset: pos, Reason: "bad shared entry"})
			return true
		})
	}
	return out, ranges
}

// validateEntryBatches checks every batch CRC of an entry's payload.
func validateEntryBatches(b []byte) error {
	_, err := batch.ValidateAll(b)
	return err
}

// check verifies the durable part of every shared file (for Log.Check).
func (s *sharedLog) check() []Damage {
	s.mu.Lock()
	sizes := map[uint64]int64{}
	for seq, f := range s.files {
		sizes[seq] = f.size
	}
	s.mu.Unlock()
	d, _ := checkSharedFiles(s.l.fs, s.l.dir, func(seq uint64, _ int64) (int64, bool) {
		n, ok := sizes[seq]
		return n, ok
	}, func(uint64, int64) bool { return false })
	return d
}
