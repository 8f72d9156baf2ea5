package log

// Shared segment files at start: scanning each file, cutting torn tails
// and handing each partition the runs of its entries.

import (
	"fmt"
	"io"
	"slices"
)

// openIndexed takes sf's runs from its extent index (nothing of the file
// itself is read: it was wholly durable when the index was written). It
// reports false when there is no intact index for the file as it is.
func (s *sharedLog) openIndexed(sf *sharedFile) bool {
	st, err := s.l.fs.Stat(sf.path)
	if err != nil {
		return false
	}
	runs, err := s.readSharedIndexDir(sf, st.Size())
	if err != nil {
		return false
	}
	for k, r := range runs {
		s.found[k] = append(s.found[k], r)
		s.noteSeal(k, sf.seq, r.next)
	}
	sf.size = st.Size()
	return true
}

// scanFile reads one shared file and records its entries. A file found
// intact (after a torn tail is cut) is synced and gets its extent index,
// so the next open need not read it.
func (s *sharedLog) scanFile(sf *sharedFile, durable int64) error {
	l := s.l
	f, err := l.fs.Open(sf.path)
	if err != nil {
		return fmt.Errorf("log: open %s: %w", sf.rel, err)
	}
	var data []byte
	st, err := f.Stat()
	if err == nil && st.Size() > maxReadWhole {
		err = errTooLargeToRead(sf.path, st.Size())
	}
	if err == nil {
		data = make([]byte, st.Size())
		var n int
		n, err = f.ReadAt(data, 0)
		if data = data[:n]; err == io.EOF {
			err = nil
		}
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("log: read %s: %w", sf.rel, err)
	}
	seed, ok := checkSharedHeader(data, sf.seq)
	if !ok {
		if durable == 0 {
			// Created but its header never reached the disk: nothing was
			// acknowledged through it.
			sf.size = 0
			return s.truncateTorn(sf, 0, data)
		}
		l.addDamage(Damage{File: sf.rel, Offset: 0, Reason: "bad shared file header"})
		sf.size = int64(len(data))
		return nil
	}
	sf.seed = seed
	byKey := map[sharedKey][]sharedEnt{}
	clean := true
	seals := map[sharedKey]int64{}
	defer func() {
		for k, next := range seals {
			s.noteSeal(k, sf.seq, next)
		}
	}()
	end := walkEntries(data, seed, seals, func(pos int64, e sharedEntry) {
		byKey[e.key] = append(byKey[e.key], sharedEnt{fpos: pos + sharedEntryHeader, n: e.n, base: e.base, next: e.next, maxTs: e.maxTs})
	}, func(pos, next int64) bool {
		if next < 0 && pos >= durable {
			// A torn tail (expected after power loss; also in a file
			// rolled just before the crash, whose seal entry and last
			// entries were not synced yet): cut below.
			return false
		}
		clean = false
		if next < 0 {
			next = int64(len(data))
		}
		l.addDamage(Damage{File: sf.rel, Offset: pos, Reason: fmt.Sprintf("bad shared entry (%d bytes unreadable)", next-pos)})
		return true
	})
	// Cut a torn tail, or what follows a seal entry (left from a recycled
	// file's earlier use whose cut at roll did not reach the disk).
	sf.size = end
	if err := s.truncateTorn(sf, end, data); err != nil {
		return err
	}
	return s.foundEntries(sf, byKey, clean)
}

// foundEntries records the entries scanned in sf as runs: one per
// partition and gap-free offset range. The file is first made durable
// whatever the checkpoint says (after kill -9 a file, even one rolled
// before the checkpoint, may be partly in the page cache only: never serve
// what a power cut could still take) and, when clean, indexed.
func (s *sharedLog) foundEntries(sf *sharedFile, byKey map[sharedKey][]sharedEnt, clean bool) error {
	var locs map[sharedKey]secLoc
	if len(byKey) > 0 {
		f, err := s.l.fs.OpenReadWrite(sf.path)
		if err == nil {
			err = s.l.fdatasync(f)
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("log: sync %s after recovery: %w", sf.rel, err)
		}
	}
	if clean && len(byKey) > 0 {
		var err error
		if locs, err = s.writeSharedIndex(sf, sf.size, byKey); err != nil {
			s.l.logger.Warn("log: cannot write shared extent index (the file is read in full at each open)", "file", sf.rel, "err", err)
		}
	}
	for k, ents := range byKey {
		var r *foundRun
		for _, e := range ents {
			if r == nil || e.base != r.next {
				s.found[k] = append(s.found[k], foundRun{file: sf, base: e.base, next: e.base, maxTs: -1, sec: locs[k]})
				r = &s.found[k][len(s.found[k])-1]
			}
			r.ents = append(r.ents, e)
			r.next, r.n, r.maxTs = e.next, r.n+e.n, max(r.maxTs, e.maxTs)
			r.entries++
		}
	}
	return nil
}

// truncateTorn cuts sf, whose bytes are data, at pos. Zeros only past pos
// are the size the file was grown ahead by (growLocked) and nothing was
// written there: cut without being counted or warned of as a torn tail.
func (s *sharedLog) truncateTorn(sf *sharedFile, pos int64, data []byte) error {
	l := s.l
	size := int64(len(data))
	if pos == size {
		return nil
	}
	zeros := !slices.ContainsFunc(data[pos:], func(b byte) bool { return b != 0 })
	f, err := l.fs.OpenReadWrite(sf.path)
	if err != nil {
		return fmt.Errorf("log: open %s: %w", sf.rel, err)
	}
	defer f.Close()
	if err := f.Truncate(pos); err != nil {
		return fmt.Errorf("log: truncate torn tail of %s at %d: %w", sf.rel, pos, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("log: sync %s: %w", sf.rel, err)
	}
	if zeros {
		l.logger.Debug("log: cut the unwritten preallocated tail", "file", sf.rel, "offset", pos, "bytes", size-pos)
		return nil
	}
	l.stats.tornBytes.Add(uint64(size - pos))
	l.logger.Warn("log: truncated torn tail", "file", sf.rel, "offset", pos, "bytes", size-pos)
	return nil
}

// take returns (and forgets) the runs found at open for a partition, in
// file order.
func (s *sharedLog) take(topicID uint64, id int32) []foundRun {
	if s == nil {
		return nil
	}
	k := sharedKey{topicID, id}
	out := s.found[k]
	delete(s.found, k)
	return out
}

// expand loads the entries of a run found at open that were left in the
// extent index.
func (s *sharedLog) expand(key sharedKey, r *foundRun) error {
	if r.ents != nil {
		return nil
	}
	ents, n, err := s.entriesIn(r.file, key, r.sec, r.base, r.next)
	if err != nil {
		return err
	}
	if n != r.n {
		// Entries the index names are damaged in the file: open goes on
		// with those that are intact (the offsets of the others are
		// reported lost where the partition's segments are merged).
		s.l.addDamage(Damage{File: r.file.rel, Offset: -1, Reason: fmt.Sprintf("entries of topic id %d partition %d (offsets %d-%d): %d of %d bytes readable",
			key.topicID, key.partition, r.base, r.next-1, n, r.n)})
	}
	for i := range ents {
		ents[i].maxTs = r.maxTs // per entry only the run's (a safe upper bound)
	}
	r.ents = ents
	return nil
}

// extents returns run r's extents, reading them from the extent index of
// its file (or the file itself) when they are not in memory.
func (s *sharedLog) extents(key sharedKey, r *vrun) ([]extent, error) {
	if r.ext != nil {
		return r.ext, nil
	}
	ents, n, err := s.entriesIn(r.file, key, r.sec, r.base, r.next)
	if err != nil {
		return nil, err
	}
	if n != r.n {
		return nil, fmt.Errorf("log: %s: entries of topic id %d partition %d do not match its extent index", r.file.rel, key.topicID, key.partition)
	}
	out := make([]extent, len(ents))
	vpos := r.vpos
	for i, e := range ents {
		out[i] = extent{vpos: vpos, n: e.n, fpos: e.fpos}
		vpos += e.n
	}
	return out, nil
}

// entriesIn returns the entries of partition key in sf holding offsets
// [base, next) (see entriesOf) and their payload bytes.
func (s *sharedLog) entriesIn(sf *sharedFile, key sharedKey, loc secLoc, base, next int64) ([]sharedEnt, int64, error) {
	ents, err := s.entriesOf(sf, key, loc)
	if err != nil {
		return nil, 0, err
	}
	ents = slices.DeleteFunc(ents, func(e sharedEnt) bool { return e.base < base || e.next > next })
	var n int64
	for _, e := range ents {
		n += e.n
	}
	return ents, n, nil
}
