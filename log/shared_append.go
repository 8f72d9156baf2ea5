package log

// Appending entries to the active shared file, syncing it, rolling to a
// new one.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/runnel/runnel/log/vfs"
)

// append writes one entry (a partition's batches) at the end of the active
// shared file, rolling to a new file first when it is full. Writes are
// serialized, so the file never has holes; the committer makes them
// durable (sync). A full disk truncates the partial entry away and
// returns ErrDiskFull (nothing written). A file other than last (the
// file of the segment's last run) starts run i of seg: it is counted as a
// reference and remembered until the file's extent index is written.
func (s *sharedLog) append(topicID uint64, part int32, data []byte, next int64, seg *segment, last *sharedFile, i int) (*sharedFile, int64, error) {
	// The entry does not depend on where it goes (but for the seed XORed
	// into its CRC): built before taking the lock every shared append
	// waits for.
	n := int64(sharedEntryHeader + len(data))
	buf := make([]byte, n)
	h := buf[:sharedEntryHeader]
	binary.BigEndian.PutUint32(h[4:], uint32(len(data)))
	binary.BigEndian.PutUint64(h[8:], topicID)
	binary.BigEndian.PutUint32(h[16:], uint32(part))
	copy(buf[sharedEntryHeader:], data)
	crc := crc32.Checksum(buf[4:], crcTable)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, 0, fmt.Errorf("log: shared segments unusable after an earlier failure: %w", s.broken)
	}
	limit := s.l.capUnit(s.l.opts.SharedSegmentBytes)
	if s.l.diskShort.Load() {
		limit = min(limit, 1<<20) // roll early: whole files are freed sooner
	}
	if s.active == nil || s.active.written > sharedHeaderSize && s.active.written+n > limit {
		if err := s.rollLocked(); err != nil {
			return nil, 0, err
		}
	}
	sf := s.active
	binary.BigEndian.PutUint32(h[0:], crc^sf.seed)
	at := sf.written
	if err := s.growLocked(sf, at+n, limit); err != nil {
		s.breakLocked(err)
		return nil, 0, fmt.Errorf("log: grow %s: %w", sf.rel, err)
	}
	if _, err := sf.h.WriteAt(buf, at); err != nil {
		if isNoSpace(err) {
			if terr := sf.h.Truncate(at); terr == nil {
				sf.alloc = at
				return nil, 0, fmt.Errorf("%w: %v", ErrDiskFull, err)
			}
		}
		s.breakLocked(err)
		return nil, 0, fmt.Errorf("log: write %s: %w", sf.rel, err)
	}
	sf.written = at + n
	k := sharedKey{topicID, part}
	if sf != last {
		sf.refs++
		sf.runs = append(sf.runs, runRef{seg: seg, i: i, key: k})
	}
	s.ends[k] = next
	return sf, at + sharedEntryHeader, nil
}

// sync makes every shared entry written so far durable: one fdatasync of
// the active file (and of a file rolled since the last sync).
func (s *sharedLog) sync() error {
	s.mu.Lock()
	if s.broken != nil {
		s.mu.Unlock()
		return fmt.Errorf("log: shared segments unusable after an earlier failure: %w", s.broken)
	}
	type job struct {
		f  *sharedFile
		h  vfs.File
		to int64
	}
	var jobs []job
	for _, f := range s.dirty {
		jobs = append(jobs, job{f, f.h, f.written})
	}
	s.syncing = true // the handles in jobs stay open (collect)
	s.mu.Unlock()
	var synced int64
	for _, j := range jobs {
		if err := s.l.fdatasync(j.h); err != nil {
			s.mu.Lock()
			s.breakLocked(err)
			s.syncing = false
			s.mu.Unlock()
			return fmt.Errorf("log: fdatasync %s: %w", j.f.rel, err)
		}
		s.mu.Lock()
		if j.to > j.f.size {
			s.l.stats.sharedBytes.Add(uint64(j.to - j.f.size))
			synced += j.to - j.f.size
			j.f.size = j.to
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	keep := s.dirty[:0]
	for _, f := range s.dirty {
		switch {
		case f == s.active || f.size < f.written:
			keep = append(keep, f) // the active file always stays listed
		default:
			f.h.Close()
			f.h = nil
			s.pending = append(s.pending, f)
			s.l.kickCheckpoint() // a whole file became durable: index it
		}
	}
	s.dirty = keep
	s.syncing = false
	if synced > 0 {
		s.commitBytes += (synced - s.commitBytes) / 8
	}
	s.mu.Unlock()
	s.l.stats.sharedCommits.Add(1)
	return nil
}

func (s *sharedLog) breakLocked(err error) {
	if s.broken == nil {
		s.l.logger.Error("log: shared segment write or sync failed; small commits go to partition segments from now on", "err", err)
	}
	s.broken = err
	s.ok.Store(false)
}

// rollLocked starts a new shared file: header written and synced, and
// the directory synced, before any entry is acknowledged through it.
func (s *sharedLog) rollLocked() error {
	fs := s.l.fs
	seq := s.next
	sf := &sharedFile{seq: seq, path: filepath.Join(s.dir, sharedName(seq)), rel: filepath.Join(sharedDirName, sharedName(seq)), seed: entrySeed(seq)}
	f, err := s.createLocked(sf)
	if err != nil {
		if isNoSpace(err) {
			s.l.diskShort.Store(true)
			return fmt.Errorf("%w: create %s: %v", ErrDiskFull, sf.rel, err)
		}
		if isOutOfFiles(err) {
			return s.l.outOfFiles("create "+sf.rel, err) // nothing changed: retried by the next append
		}
		s.breakLocked(err)
		return fmt.Errorf("log: create %s: %w", sf.rel, err)
	}
	if _, err = f.WriteAt(sharedHeader(seq), 0); err == nil {
		if err = f.Sync(); err == nil {
			err = vfs.SyncDir(fs, s.dir)
		}
		s.l.stats.fsyncs.Add(1)
		if err != nil && !isOutOfFiles(err) {
			s.l.stats.fsyncErrors.Add(1)
		}
	}
	if err != nil {
		f.Close()
		fs.Remove(sf.path)
		if isNoSpace(err) {
			s.l.diskShort.Store(true)
			return fmt.Errorf("%w: create %s: %v", ErrDiskFull, sf.rel, err)
		}
		if isOutOfFiles(err) {
			// The directory could not be opened for its sync.
			return s.l.outOfFiles("sync "+s.dir, err)
		}
		s.breakLocked(err)
		return fmt.Errorf("log: create %s: %w", sf.rel, err)
	}
	if old := s.active; old != nil && len(s.ends) > 0 {
		// The seal entry: where each partition's offsets stand at the end
		// of the file, so damage to a partition's last entries in it is
		// not mistaken for their absence.
		body := make([]byte, 0, 20*len(s.ends))
		for k, next := range s.ends {
			body = binary.BigEndian.AppendUint64(body, k.topicID)
			body = binary.BigEndian.AppendUint32(body, uint32(k.partition))
			body = binary.BigEndian.AppendUint64(body, uint64(next))
		}
		buf := make([]byte, sharedEntryHeader, sharedEntryHeader+len(body))
		binary.BigEndian.PutUint32(buf[4:], uint32(len(body)))
		binary.BigEndian.PutUint32(buf[16:], sealPartition)
		buf = append(buf, body...)
		binary.BigEndian.PutUint32(buf, crc32.Checksum(buf[4:], crcTable)^old.seed)
		if _, err := old.h.WriteAt(buf, old.written); err == nil {
			old.written += int64(len(buf))
			// Synced with the seal entry; open cuts it otherwise.
			if err := old.cutStale(); err != nil {
				s.l.logger.Warn("log: cannot cut a recycled shared file at its seal entry", "file", old.rel, "err", err)
			}
		} else if !isNoSpace(err) {
			s.breakLocked(err)
			return fmt.Errorf("log: write seal entry of %s: %w", old.rel, err)
		} else if terr := old.h.Truncate(old.written); terr != nil {
			// The seal entry is optional, a torn one is not.
			s.breakLocked(terr)
			return fmt.Errorf("log: write seal entry of %s: %v; truncate back: %w", old.rel, err, terr)
		}
		clear(s.ends)
	}
	// The old file stays in dirty: the next sync closes its handle (a
	// sync running now may be using it) and queues it for indexing.
	s.next++
	sf.size, sf.written, sf.h = sharedHeaderSize, sharedHeaderSize, f
	s.files[seq] = sf
	s.active = sf
	s.dirty = append(s.dirty, sf)
	return nil
}

// sharedGrow: the active shared file is grown this far ahead of its
// entries (growFile: zeros or fallocate, sharedZerosBelow), as the
// journal is (journalGrow).
// An fdatasync of an entry written at the end of a file changes the file's
// size, which on ext4 is a file-system journal commit per commit; written
// over zeros already in the file it changes neither its size nor its
// block map. pwrite + fdatasync of 256-byte entries, 3,000 in a row, on a
// 2-core VM: on an ext4 with a journal (mkfs.ext4 defaults, a loop device
// on the VM's disk) 552-711 µs each at the end of the file, 294-319 µs
// inside a preallocated (fallocate) size; on the VM's ext4 without a
// journal 202-230 µs and 154-160 µs. A preallocated block is converted
// to written by the first entry in it, a metadata write in that commit's
// sync, which with entries of a few KiB (an MQTT client's window of 20 in
// one commit) is nearly every commit: 3,400-byte entries, p50 of three
// runs of 1,500, ext4 with a journal 628-1,070 µs preallocated against
// 304-365 µs over written zeros, without a journal 244-432 against
// 142-171 µs. What lies past the entries is zeros, which recovery cuts as
// a torn tail and a roll or Close cuts before the file is indexed
// (cutStale: the same path as a recycled file's stale bytes).
const sharedGrow = 256 << 10

// sharedZerosBelow: the active shared file is grown by writing zeros while
// its commits average less than this, else with fallocate. Zeros cost
// their own write while a file is first filled; a conversion costs a
// metadata write per commit that reaches a new block, whatever the
// commit's size. At 16 KiB commits the two cost the same device bytes on
// ext4 with mkfs defaults (BenchmarkTrickleDevice, log/doc.go); larger
// commits convert many blocks in one metadata write, so there fallocate
// writes less (zeros would about double a first fill's bytes at bulk
// rates), and smaller ones gain most from the zeros (a sync without the
// metadata write: 3,400-byte entries above).
const sharedZerosBelow = 32 << 10

// growLocked sets sf's size ahead of an entry that ends at end (at most
// to limit, the roll size, unless the entry itself goes past it). Where
// the disk is short of space the entry is written at the end of the file
// as before, and nothing is grown on a disk already short (its files roll
// early and are freed sooner; zeros ahead would only take more of it).
// Any other failure is a failed write of the file, returned.
func (s *sharedLog) growLocked(sf *sharedFile, end, limit int64) error {
	if end <= sf.alloc || s.l.diskShort.Load() {
		return nil
	}
	grow := min(alignUp(end, sharedGrow), max(limit, end))
	if err := growFile(sf.h, grow, s.commitBytes < sharedZerosBelow); err != nil {
		if isNoSpace(err) {
			s.l.diskShort.Store(true)
			return nil
		}
		return err
	}
	sf.alloc = grow
	return nil
}

// createLocked creates sf's file, or reuses a spare: a shared file
// deleted earlier, renamed to sf's name and overwritten in place from its
// header on. Its blocks are written already, so an fdatasync of it changes
// neither its size nor its block map: no file-system journal commit per
// commit, as for the journal format. Its old entries (CRCs of another
// seed) are never read as this file's.
func (s *sharedLog) createLocked(sf *sharedFile) (vfs.File, error) {
	fs := s.l.fs
	for len(s.spares) > 0 && !s.l.diskShort.Load() {
		spare := s.spares[len(s.spares)-1]
		s.spares = s.spares[:len(s.spares)-1]
		if err := fs.Rename(spare, sf.path); err != nil {
			fs.Remove(spare)
			continue
		}
		f, err := fs.OpenReadWrite(sf.path)
		if err != nil {
			fs.Remove(sf.path)
			continue
		}
		if st, err := f.Stat(); err == nil {
			sf.alloc = st.Size()
		}
		s.recycled++
		return f, nil
	}
	return fs.Create(sf.path)
}

// durableEnd is, for the checkpoint, the oldest shared file not wholly
// synced (a rolled file waiting for its last sync, else the active one)
// and its synced size: every file before it is durable to its end.
func (s *sharedLog) durableEnd() (uint64, int64) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var seq, newest uint64
	var pos, newestPos int64
	found := false
	for q, f := range s.files {
		if f.size < f.written && (!found || q < seq) {
			seq, pos, found = q, f.size, true
		}
		if q >= newest {
			newest, newestPos = q, f.size
		}
	}
	if !found {
		return newest, newestPos
	}
	return seq, pos
}
