package log

// Deleting shared files that no partition references any more, and the
// references that keep them.

import (
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/runnel/runnel/log/vfs"
)

// addRef counts a run kept by a partition at open.
func (s *sharedLog) addRef(f *sharedFile) {
	s.mu.Lock()
	f.refs++
	s.mu.Unlock()
}

// release drops the references of a deleted segment's runs: one per
// run, files as sharedFiles (or a truncation) collected them.
func (s *sharedLog) release(files []*sharedFile) {
	if s == nil {
		return
	}
	s.mu.Lock()
	for _, f := range files {
		f.refs--
	}
	s.mu.Unlock()
}

// sharedFiles is the file of each of seg's runs, read under seg.mu: the
// indexer writes a run's extent fields under it (sharedLog.index), so a
// copy of the runs is not read outside it.
func (seg *segment) sharedFiles() []*sharedFile {
	seg.mu.Lock()
	defer seg.mu.Unlock()
	return runFiles(make([]*sharedFile, 0, len(seg.virt.runs)), seg.virt.runs)
}

// runFiles appends the file of each of runs to files (for release).
func runFiles(files []*sharedFile, runs []vrun) []*sharedFile {
	for i := range runs {
		files = append(files, runs[i].file)
	}
	return files
}

// collect deletes shared files no live segment references (not the active
// one). The checkpoint, which records every partition's log start, is
// written first, so recovery never resurrects deleted batches in front of
// a gap.
func (s *sharedLog) collect() {
	if s == nil {
		return
	}
	s.mu.Lock()
	var dead []*sharedFile
	for _, f := range s.files {
		if f.refs <= 0 && f != s.active {
			dead = append(dead, f)
		}
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i].seq < dead[j].seq })
	// The unreferenced files older than every referenced one.
	prefix := 0
	for _, f := range dead {
		older := false
		for _, g := range s.files {
			older = older || g.seq < f.seq && g.refs > 0
		}
		if older {
			break
		}
		prefix++
	}
	s.mu.Unlock()
	if len(dead) == 0 {
		return
	}
	if err := s.l.writeCheckpoint(); err != nil {
		// Without the log starts on disk only the oldest files may go: a
		// crash then brings back deleted batches, but never a gap.
		s.l.logger.Warn("log: cannot write recovery checkpoint; only the oldest shared files are deleted", "err", err)
		dead = dead[:prefix]
	}
	s.mu.Lock()
	keep := dead[:0]
	for _, f := range dead {
		if slices.Contains(s.dirty, f) {
			// Only a seal entry may be unsynced in a file nothing
			// references. A running sync holds its handle: the file goes
			// at the next collect.
			if s.syncing {
				continue
			}
			f.h.Close()
			f.h = nil
			s.dirty = slices.DeleteFunc(s.dirty, func(d *sharedFile) bool { return d == f })
		}
		keep = append(keep, f)
	}
	dead = keep
	s.mu.Unlock()
	for _, f := range dead {
		s.l.files.forget(f.path)
		s.l.files.forget(sidxPath(f.path))
		if err := s.l.fs.Remove(sidxPath(f.path)); err != nil && !os.IsNotExist(err) {
			s.l.logger.Warn("log: cannot remove shared extent index", "file", f.rel, "err", err)
		}
		s.mu.Lock()
		keep := len(s.spares) < maxSpareFiles && !s.l.diskShort.Load()
		s.mu.Unlock()
		spare := strings.TrimSuffix(f.path, sharedSuffix) + spareSuffix
		if keep && s.l.fs.Rename(f.path, spare) == nil {
			s.mu.Lock()
			s.spares = append(s.spares, spare)
			s.mu.Unlock()
		} else if err := s.l.fs.Remove(f.path); err != nil && !os.IsNotExist(err) {
			s.l.logger.Warn("log: cannot remove shared file", "file", f.rel, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.files, f.seq)
		s.mu.Unlock()
	}
	if s.l.diskShort.Load() {
		s.mu.Lock()
		spares := s.spares
		s.spares = nil
		s.mu.Unlock()
		for _, p := range spares {
			s.l.fs.Remove(p) // free the space
		}
	}
	vfs.SyncDir(s.l.fs, s.dir)
}
