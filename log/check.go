package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/runnel/runnel/log/vfs"
)

// Check implements Log: it verifies every visible batch (CRC, offset
// sequence), the segment names and well-formed index files. It changes
// nothing; damage it finds is also added to Stats().Damaged.
func (l *logImpl) Check() []Damage {
	var out []Damage
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			limits := map[string]int64{}
			for _, s := range p.segs {
				limits[s.path] = p.limitLocked(s)
			}
			p.mu.Unlock()
			out = append(out, checkPartition(l.fs, l.dir, p.rel, func(path string, size int64) (int64, bool) {
				lim, ok := limits[path]
				if !ok {
					return 0, false // created or deleted since the snapshot
				}
				return lim, true
			})...)
		}
	}
	for _, d := range out {
		l.addDamage(d)
	}
	return out
}

// CheckDir verifies a data directory offline, read-only (the log must not
// be open): every batch of every segment (CRC-32C, offsets in sequence,
// file named by its first offset) and well-formed index files. Bad bytes
// at the end of a partition's last segment that lie past the recovery
// checkpoint are a torn tail (expected after power loss, truncated at the
// next open), not damage. A non-empty result means damage: runnel check
// exits 1.
func CheckDir(dir string) ([]Damage, error) {
	return CheckDirFS(vfs.Default, dir)
}

// CheckDirFS is CheckDir on a given file system.
func CheckDirFS(fs vfs.FS, dir string) ([]Damage, error) {
	if _, err := fs.Stat(dir); err != nil {
		return nil, err
	}
	ck, err := readCheckpoint(fs, dir)
	if err != nil {
		ck = nil
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var out []Damage
	for _, tn := range names {
		if !validTopicName(tn) {
			continue
		}
		if st, err := fs.Stat(filepath.Join(dir, tn)); err != nil || !st.IsDir() {
			continue
		}
		parts, err := fs.List(filepath.Join(dir, tn))
		if err != nil {
			return out, err
		}
		for _, pn := range parts {
			id, err := strconv.Atoi(pn)
			if err != nil || strconv.Itoa(id) != pn {
				continue
			}
			rel := filepath.Join(tn, pn)
			e, hasCk := ck.get(tn, int32(id))
			var lastPath string
			if segs, _ := fs.List(filepath.Join(dir, rel)); len(segs) > 0 {
				for _, n := range segs {
					if _, ok := parseSegmentName(n); ok {
						lastPath = filepath.Join(dir, rel, n)
					}
				}
			}
			out = append(out, checkPartitionTail(fs, dir, rel, func(path string, size int64) (int64, bool) {
				return size, true
			}, lastPath, e, hasCk)...)
		}
	}
	return out, nil
}

func checkPartition(fs vfs.FS, dataDir, rel string, limit func(path string, size int64) (int64, bool)) []Damage {
	return checkPartitionTail(fs, dataDir, rel, limit, "", ckptEntry{}, false)
}

// checkPartitionTail checks one partition directory. When lastPath is set,
// invalid bytes at the end of that file past the checkpoint are a torn
// tail, not damage.
func checkPartitionTail(fs vfs.FS, dataDir, rel string, limit func(string, int64) (int64, bool), lastPath string, ck ckptEntry, hasCk bool) []Damage {
	var out []Damage
	dir := filepath.Join(dataDir, rel)
	names, err := fs.List(dir)
	if err != nil {
		return []Damage{{File: rel, Reason: "cannot list partition: " + err.Error()}}
	}
	var bases []int64
	for _, n := range names {
		if b, ok := parseSegmentName(n); ok {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	expect := int64(-1)
	for i, base := range bases {
		path := filepath.Join(dir, segmentName(base))
		srel := filepath.Join(rel, segmentName(base))
		f, err := fs.Open(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted by retention meanwhile
			}
			out = append(out, Damage{File: srel, Reason: "cannot open: " + err.Error()})
			continue
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			out = append(out, Damage{File: srel, Reason: "cannot stat: " + err.Error()})
			continue
		}
		size, ok := limit(path, st.Size())
		if !ok {
			f.Close()
			continue
		}
		if expect >= 0 && base > expect && i > 0 {
			out = append(out, Damage{File: filepath.Join(rel, segmentName(bases[i-1])), Offset: -1,
				Reason: fmt.Sprintf("offsets %d-%d missing between segments", expect, base-1)})
		}
		if expect >= 0 && base < expect {
			out = append(out, Damage{File: srel, Reason: fmt.Sprintf("segment starts at %d, before the previous one ends (%d)", base, expect)})
		}
		expect = base
		var index []indexEntry
		positions := map[int64]int64{} // batch position → base offset
		sc := newScanner(f, 0, size, true)
		for {
			h, _, pos, err := sc.next()
			if err == io.EOF {
				break
			}
			if err == nil && h.BaseOffset != expect {
				err = &errBadBatch{pos, fmt.Errorf("base offset %d, expected %d", h.BaseOffset, expect)}
			}
			if err != nil {
				var bad *errBadBatch
				if errors.As(err, &bad) && path == lastPath && (!hasCk || base > ck.segBase || base == ck.segBase && pos >= ck.pos) {
					if at := resync(f, pos+1, size, expect, expect+1<<31); at < 0 {
						break // torn tail, truncated at the next open
					}
				}
				out = append(out, Damage{File: srel, Offset: pos, Reason: err.Error()})
				at := resync(f, pos+1, size, expect, expect+1<<31)
				if at < 0 {
					break
				}
				hh, _, _, _ := newScanner(f, at, size, false).next()
				expect = hh.BaseOffset
				sc = newScanner(f, at, size, true)
				continue
			}
			positions[pos] = h.BaseOffset
			expect = h.LastOffset() + 1
		}
		// Index files: absent or torn ones are rebuilt at open (fine);
		// well-formed ones must point at real batches.
		if idx, err := readIndexes(fs, path, base, st.Size()); err == nil {
			index = idx
			for _, e := range index {
				if off, ok := positions[int64(e.pos)]; int64(e.pos) < size && (!ok || off != base+int64(e.relOff)) {
					out = append(out, Damage{File: filepath.Join(rel, segmentName(base)[:20]+indexSuffix), Offset: int64(e.pos),
						Reason: "index entry does not point at its batch (index is rebuildable: delete it)"})
					break
				}
			}
		}
		f.Close()
	}
	return out
}
