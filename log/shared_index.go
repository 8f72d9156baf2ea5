package log

// Indexing shared files: where each partition's entries are, so a read
// need not scan the file.

// indexPending writes the extent index of every rolled, wholly durable
// file and lets the runs written to it drop their extents from memory.
func (s *sharedLog) indexPending() {
	if s == nil {
		return
	}
	s.mu.Lock()
	files := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, f := range files {
		s.index(f)
	}
}

// indexActive indexes the active file too, when it is wholly durable (at
// Close: the next open then reads no shared file at all).
func (s *sharedLog) indexActive() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if a := s.active; a != nil && a.size == a.written && a.written > sharedHeaderSize {
		// The index names the file's size: a recycled file is cut first.
		stale := a.alloc > a.written
		if err := a.cutStale(); err == nil && (!stale || s.l.fdatasync(a.h) == nil) {
			s.pending = append(s.pending, a)
		}
	}
	s.mu.Unlock()
	s.indexPending()
}

// index writes f's extent index and drops the extents of f's runs from
// memory.
func (s *sharedLog) index(f *sharedFile) {
	s.mu.Lock()
	size := f.size
	_, live := s.files[f.seq]
	s.mu.Unlock()
	if !live {
		return
	}
	locs, err := func() (map[sharedKey]secLoc, error) {
		cf, err := s.l.files.get(f.path, false)
		if err != nil {
			return nil, err
		}
		byKey, err := streamEntries(cf.f, f.seq, size)
		s.l.files.release(cf)
		if err != nil {
			return nil, err
		}
		return s.writeSharedIndex(f, size, byKey)
	}()
	if err != nil {
		s.l.logger.Warn("log: cannot index shared file (its extents stay in memory)", "file", f.rel, "err", err)
		return
	}
	s.mu.Lock()
	refs := f.runs
	f.runs = nil
	s.mu.Unlock()
	for _, r := range refs {
		r.seg.mu.Lock()
		if v := r.seg.virt; r.i < len(v.runs) && v.runs[r.i].file == f {
			if loc, ok := locs[r.key]; ok {
				v.runs[r.i].sec, v.runs[r.i].ext = loc, nil
			}
		}
		r.seg.mu.Unlock()
	}
}
