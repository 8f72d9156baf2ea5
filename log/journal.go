package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log/vfs"
)

// The node journal (see doc.go): small "always" commits of many partitions
// are made durable by one sequential write and one fdatasync of this file
// instead of one fdatasync per segment file. Never change these constants.
const (
	journalName       = "journal"
	journalKeepPrefix = "journal.keep-" // + generation: replayed, then removed, at open
	journalMagic      = "RNLJRNL\x00"
	journalVersion    = 1
	journalHeaderSize = 24 // magic 8, version u16, flags u16, generation u64, crc u32
	journalRecHeader  = 8  // body length u32, body crc u32
	// journalAlign: every commit is padded to whole 4 KiB pages, so a
	// commit never rewrites a page the previous one synced (see doc.go).
	journalAlign = 4096
	// journalGrow: the file is extended (zeros written: growFile) this
	// much at a time ahead of the commits, so most fdatasyncs change no
	// metadata. Always zeros: the file is overwritten in place from one
	// generation to the next, so they are written once for its life.
	journalGrow = 256 << 10
)

// growFile grows f from its end to size to (the bytes before its end, a
// header or entries, stay), so that entries written inside the new size
// change no size: their fdatasync is no file-system journal commit for
// the size.
//
// With zeros, it writes zeros over the new range: entries written there
// later overwrite blocks that are allocated and written, so their
// fdatasync changes no block map either (no metadata write at all); the
// next fdatasync writes the zeros, one sequential write per step. Else it
// reserves the range with fallocate and sets the size: a preallocated
// block is "unwritten", and the first entry in each 4 KiB block converts
// it, a metadata write in that commit's fdatasync, but nothing is written
// twice (the figures of both: sharedGrow, log/doc.go). A file system
// without fallocate gets the size alone.
//
// On a disk without the space it returns ENOSPC (or EDQUOT; ext4 and XFS
// reserve delayed-allocation blocks at the write) and f is cut back to its
// size (where that fails too, what it grew by is zeros, which the journal
// and the shared files treat as unwritten space).
func growFile(f vfs.File, to int64, zeros bool) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size >= to {
		return nil
	}
	if !zeros {
		if err := f.Preallocate(size, to-size); err != nil && isNoSpace(err) {
			return err
		}
		return f.Truncate(to)
	}
	for off := size; off < to; {
		n := min(to-off, int64(len(zeroChunk)))
		if _, err := f.WriteAt(zeroChunk[:n], off); err != nil {
			f.Truncate(size) // best effort: what was written is zeros
			return err
		}
		off += n
	}
	return nil
}

// zeroChunk is what growFile writes from (never written to).
var zeroChunk [64 << 10]byte

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// journal is the node-wide commit journal.
type journal struct {
	l    *logImpl
	path string

	mu     sync.Mutex // guards every field below
	f      vfs.File
	size   int64 // end of the current generation's records
	alloc  int64 // file size (grown ahead in journalGrow steps)
	gen    uint64
	broken bool                    // a write or sync failed: commits go direct (mirrored in ok)
	segs   map[*segment]*partition // segments with journaled, unsynced bytes
	buf    bytes.Buffer            // a commit's records (reused)

	ok atomic.Bool // usable: open and not broken
}

func journalHeader(gen uint64) []byte { return fileHeader(journalMagic, journalVersion, gen) }

// fileHeader is the 24-byte header of the journal and of shared segment
// files: magic (8 bytes), version u16, flags u16 = 0, a u64 (generation or
// sequence), CRC-32C of [0,20).
func fileHeader(magic string, version uint16, n uint64) []byte {
	h := make([]byte, 24)
	copy(h, magic)
	binary.BigEndian.PutUint16(h[8:], version)
	binary.BigEndian.PutUint64(h[12:], n)
	binary.BigEndian.PutUint32(h[20:], crc32.Checksum(h[:20], crcTable))
	return h
}

// parseFileHeader checks a fileHeader's magic and CRC and returns its
// version and u64.
func parseFileHeader(h []byte, magic string) (version uint16, n uint64, ok bool) {
	if len(h) < 24 || string(h[:8]) != magic || binary.BigEndian.Uint32(h[20:]) != crc32.Checksum(h[:20], crcTable) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(h[8:]), binary.BigEndian.Uint64(h[12:]), true
}

// openJournal starts a new generation of the journal (after replay). The
// file is reused in place: commits overwrite the blocks of earlier
// generations, so once the file has grown an fdatasync needs no metadata
// update (no size change, no block allocation).
func openJournal(l *logImpl) (*journal, error) {
	j := &journal{l: l, path: filepath.Join(l.dir, journalName), segs: map[*segment]*partition{}}
	_, statErr := l.fs.Stat(j.path)
	f, err := l.fs.OpenReadWrite(j.path)
	if err != nil {
		return nil, fmt.Errorf("log: open journal: %w", err)
	}
	j.f = f
	if st, err := f.Stat(); err == nil {
		j.alloc = st.Size()
	}
	gen := uint64(time.Now().UnixNano())
	if b := make([]byte, journalHeaderSize); readAtFull(f, b, 0) == nil && checkJournalHeader(b) {
		if old := binary.BigEndian.Uint64(b[12:]); old >= gen {
			gen = old + 1
		}
	}
	if err := j.resetLocked(gen, false); err != nil {
		f.Close()
		return nil, err
	}
	if statErr != nil {
		if err := vfs.SyncDir(l.fs, l.dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("log: sync %s: %w", l.dir, err)
		}
	}
	j.ok.Store(true)
	return j, nil
}

func checkJournalHeader(h []byte) bool {
	v, _, ok := parseFileHeader(h, journalMagic)
	return ok && v == journalVersion
}

// resetLocked starts generation gen: records of older generations left in
// the file are not replayed. shrink also gives the file's space back.
func (j *journal) resetLocked(gen uint64, shrink bool) error {
	if shrink {
		if err := j.f.Truncate(journalHeaderSize); err != nil {
			return fmt.Errorf("log: truncate journal: %w", err)
		}
		j.alloc = journalHeaderSize
	}
	if _, err := j.f.WriteAt(journalHeader(gen), 0); err != nil {
		return fmt.Errorf("log: write journal header: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("log: sync journal: %w", err)
	}
	j.size, j.gen = journalHeaderSize, gen
	return nil
}

// usable is lock-free: plan calls it holding a partition's mu, and
// rotate takes partition locks while holding j.mu.
func (j *journal) usable() bool { return j.ok.Load() }

func (j *journal) setBrokenLocked() {
	j.broken = true
	j.ok.Store(false)
}

// commit writes one record per plan and syncs once.
func (j *journal) commit(plans []*commitPlan) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken || j.f == nil {
		return errors.New("log: journal unusable")
	}
	buf := &j.buf
	buf.Reset()
	defer func() {
		if buf.Cap() > journalGrow {
			*buf = bytes.Buffer{} // a large commit does not pin its buffer
		}
	}()
	for _, pl := range plans {
		p := pl.p
		n := buf.Len()
		buf.Write(make([]byte, journalRecHeader))
		var hdr [2 + 8 + 4 + 8 + 8]byte
		var g [8]byte
		binary.BigEndian.PutUint64(g[:], j.gen)
		buf.Write(g[:])
		binary.BigEndian.PutUint16(hdr[0:], uint16(len(p.t.name)))
		buf.Write(hdr[:2])
		buf.WriteString(p.t.name)
		binary.BigEndian.PutUint64(hdr[2:], p.t.id)
		binary.BigEndian.PutUint32(hdr[10:], uint32(p.id))
		binary.BigEndian.PutUint64(hdr[14:], uint64(pl.hwmSeg.base))
		binary.BigEndian.PutUint64(hdr[22:], uint64(pl.jpos))
		buf.Write(hdr[2:])
		buf.Write(pl.jdata)
		b := buf.Bytes()
		body := b[n+journalRecHeader:]
		binary.BigEndian.PutUint32(b[n:], uint32(len(body)))
		binary.BigEndian.PutUint32(b[n+4:], crc32.Checksum(body, crcTable))
	}
	// Pad to whole pages: the file's end stays page-aligned, so the next
	// commit neither rewrites this commit's last page nor makes the kernel
	// zero (and dirty) a partial end page.
	if pad := alignUp(int64(buf.Len()), journalAlign) - int64(buf.Len()); pad > 0 {
		buf.Write(make([]byte, pad))
	}
	at := alignUp(j.size, journalAlign)
	if end := at + int64(buf.Len()); end > j.alloc {
		grow := alignUp(end, journalGrow)
		if err := growFile(j.f, grow, true); err != nil {
			if isNoSpace(err) {
				j.l.diskShort.Store(true)
			} else {
				j.setBrokenLocked()
			}
			return fmt.Errorf("log: grow journal: %w", err)
		}
		j.alloc = grow
	}
	if _, err := j.f.WriteAt(buf.Bytes(), at); err != nil {
		if isNoSpace(err) && j.f.Truncate(j.size) == nil {
			// Full disk: this commit syncs its segments instead; the
			// journal stays usable and is emptied at the next cycle.
			j.l.diskShort.Store(true)
			return fmt.Errorf("log: write journal: %w", err)
		}
		j.setBrokenLocked()
		return fmt.Errorf("log: write journal: %w", err)
	}
	if err := j.l.fdatasync(j.f); err != nil {
		j.setBrokenLocked()
		return fmt.Errorf("log: sync journal: %w", err)
	}
	j.size = at + int64(buf.Len())
	j.l.stats.journalCommits.Add(1)
	j.l.stats.journalBytes.Add(uint64(buf.Len()))
	for _, pl := range plans {
		j.segs[pl.hwmSeg] = pl.p
	}
	return nil
}

// rotate syncs every segment with journaled bytes and empties the journal.
// A failed segment sync makes that partition read-only and keeps the
// journal (replayed at the next open).
func (j *journal) rotate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil || len(j.segs) == 0 && j.size == journalHeaderSize {
		return nil
	}
	var failed, deferred error
	for seg, p := range j.segs {
		p.mu.Lock()
		to, ro := seg.covered, p.roErr
		p.mu.Unlock()
		if ro != nil {
			// A failed fsync may have dropped journaled pages of this
			// segment, and a retried fsync would "succeed" without them:
			// keep the journal for the next open to replay.
			failed = ro
			continue
		}
		cf, err := p.openForSync(seg)
		if cf == nil && err == nil {
			delete(j.segs, seg)
			continue // deleted by retention or DeleteTopic
		}
		if err != nil && isOutOfFiles(err) {
			// No descriptor to open it: the journal keeps its bytes
			// until a later checkpoint syncs it.
			deferred = j.l.outOfFiles("journal checkpoint of "+seg.rel, err)
			continue
		}
		if err == nil {
			err = j.l.fdatasync(cf.f)
			j.l.files.release(cf)
		}
		p.mu.Lock()
		if err != nil {
			p.failLocked(fmt.Errorf("fdatasync %s at journal checkpoint: %w", seg.rel, err))
			failed = err
		} else if to > seg.synced {
			seg.synced = to
			keep := p.unsynced[:0]
			for _, s := range p.unsynced {
				if s.synced < s.size || s.covered < s.size {
					keep = append(keep, s)
				}
			}
			p.unsynced = keep
		}
		p.mu.Unlock()
		if err == nil {
			delete(j.segs, seg) // synced: its journal records are no longer needed
		}
	}
	if failed != nil {
		// Keep this file for the next open to replay (it holds the
		// acknowledged bytes of the failed segments) and go on with a
		// fresh journal.
		if err := j.keepAndRestartLocked(); err != nil {
			j.setBrokenLocked()
			return fmt.Errorf("%v; and keeping the journal failed: %w", failed, err)
		}
		return failed
	}
	if deferred != nil {
		return deferred // the journal goes on; rotated again when it is next full
	}
	clear(j.segs)
	if err := j.resetLocked(j.gen+1, j.l.diskShort.Load()); err != nil {
		j.setBrokenLocked()
		return err
	}
	return nil
}

// used reports whether the journal holds records.
func (j *journal) used() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size > journalHeaderSize
}

// keepAndRestartLocked renames the journal to journal.keep-<generation>
// and starts an empty one.
func (j *journal) keepAndRestartLocked() error {
	fs := j.l.fs
	if err := j.f.Close(); err != nil {
		return err
	}
	j.f = nil
	j.ok.Store(false)
	keep := filepath.Join(j.l.dir, journalKeepPrefix+strconv.FormatUint(j.gen, 10))
	if err := fs.Rename(j.path, keep); err != nil {
		return err
	}
	if err := vfs.SyncDir(fs, j.l.dir); err != nil {
		return err
	}
	f, err := fs.Create(j.path)
	if err != nil {
		return err
	}
	j.f, j.alloc = f, 0
	clear(j.segs)
	if err := j.resetLocked(j.gen+1, false); err != nil {
		return err
	}
	if err := vfs.SyncDir(fs, j.l.dir); err != nil {
		return err
	}
	if !j.broken {
		j.ok.Store(true)
	}
	j.l.logger.Warn("log: journal kept for replay at the next open (a partition failed)", "file", keep)
	return nil
}

// full reports whether the journal should be rotated.
func (j *journal) full() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size >= j.l.capUnit(j.l.opts.JournalMaxBytes)
}

func (j *journal) close() error {
	err := j.rotate()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
		j.f = nil
		j.ok.Store(false)
	}
	return err
}

func (c *committer) maybeRotateJournal(final bool) {
	j := c.l.journal
	// A short disk also empties the journal: its bytes are a second copy.
	if j == nil || !(final || j.full() || c.l.diskShort.Load() && j.used()) {
		return
	}
	if err := j.rotate(); err != nil && !isOutOfFiles(err) {
		c.l.logger.Error("log: journal checkpoint failed", "err", err)
	}
}

// replayJournal copies every intact journal record into its segment file
// (where the segment still exists), syncs them, and leaves the journal to
// be reset by openJournal. A torn last record is expected after a crash.
func (l *logImpl) replayJournal() error {
	// Kept journals first (oldest generation first), then the live one.
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("log: list %s: %w", l.dir, err)
	}
	type kept struct {
		gen  uint64
		name string
	}
	var keeps []kept
	for _, n := range names {
		if g, ok := strings.CutPrefix(n, journalKeepPrefix); ok {
			if v, err := strconv.ParseUint(g, 10, 64); err == nil {
				keeps = append(keeps, kept{v, n})
			}
		}
	}
	sort.Slice(keeps, func(i, j int) bool { return keeps[i].gen < keeps[j].gen })
	for _, k := range keeps {
		if err := l.replayJournalFile(filepath.Join(l.dir, k.name)); err != nil {
			return err
		}
	}
	if err := l.replayJournalFile(filepath.Join(l.dir, journalName)); err != nil {
		return err
	}
	// Everything replayed is synced into its segment: the kept files go.
	for _, k := range keeps {
		if err := l.fs.Remove(filepath.Join(l.dir, k.name)); err != nil {
			return fmt.Errorf("log: remove %s: %w", k.name, err)
		}
	}
	if len(keeps) > 0 {
		if err := vfs.SyncDir(l.fs, l.dir); err != nil {
			return fmt.Errorf("log: sync %s: %w", l.dir, err)
		}
	}
	return nil
}

// replayJournalFile replays one journal file.
func (l *logImpl) replayJournalFile(path string) error {
	f, err := l.fs.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("log: open journal: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxReadWhole {
		return fmt.Errorf("log: read journal: %w", errTooLargeToRead(path, st.Size()))
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("log: read journal: %w", err)
	}
	if len(data) < journalHeaderSize {
		return nil // created but never written: nothing acknowledged through it
	}
	h := data[:journalHeaderSize]
	// A header that never reached the disk (crash right after a reset)
	// is harmless: nothing was acknowledged through that generation. The
	// records check themselves, so a damaged header only matters when
	// intact records follow it.
	badHeader := !checkJournalHeader(h)
	gen := binary.BigEndian.Uint64(h[12:])
	// Segment files are reached through the log's file cache, as in
	// normal operation: a journal naming thousands of partitions replays
	// within Options.MaxOpenFiles handles (each is synced at the end
	// through whatever handle the cache has then; fsync applies to the
	// inode).
	touched := map[string]bool{}
	ids := map[string]uint64{}
	pos := int64(journalHeaderSize)
	rest := data[journalHeaderSize:]
	records := 0
	for len(rest) >= journalRecHeader {
		n := int(binary.BigEndian.Uint32(rest))
		if n == 0 && binary.BigEndian.Uint32(rest[4:]) == 0 {
			// The zeros after a commit: the next one starts on the next
			// page (an empty page start is the end).
			if pos%journalAlign == 0 {
				break // no commit started on this page
			}
			next := alignUp(pos, journalAlign)
			if int(next) >= len(data) {
				break
			}
			rest = data[next:]
			pos = next
			continue
		}
		if n < 38 || n > len(rest)-journalRecHeader {
			break
		}
		body := rest[journalRecHeader : journalRecHeader+n]
		if binary.BigEndian.Uint32(rest[4:]) != crc32.Checksum(body, crcTable) {
			break
		}
		// A record of an older generation: the end of this one. (With a
		// damaged header the generation is unknown; older records hold
		// data that was synced to its segment before their generation
		// ended, so replaying them rewrites identical bytes.)
		if rg := binary.BigEndian.Uint64(body); rg != gen && !badHeader {
			break
		}
		body = body[8:]
		tl := int(binary.BigEndian.Uint16(body))
		if 2+tl+28 > len(body) {
			break
		}
		topic := string(body[2 : 2+tl])
		b := body[2+tl:]
		tid := binary.BigEndian.Uint64(b)
		part := int32(binary.BigEndian.Uint32(b[8:]))
		segBase := int64(binary.BigEndian.Uint64(b[12:]))
		at := int64(binary.BigEndian.Uint64(b[20:]))
		payload := b[28:]
		if ValidTopicName(topic) && part >= 0 && topicIDOnDisk(l.fs, l.dir, topic, ids) == tid {
			sp := filepath.Join(partitionDir(l.dir, topic, part), segmentName(segBase))
			if err := l.replayInto(touched, sp, at, payload); err != nil {
				return fmt.Errorf("log: replay journal record at %d into %s: %w", pos, sp, err)
			}
		}
		records++
		adv := journalRecHeader + n
		rest = rest[adv:]
		pos += int64(adv)
	}
	paths := make([]string, 0, len(touched))
	for p := range touched {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		cf, err := l.files.get(p, true)
		if err == nil {
			err = cf.f.Sync()
			l.files.release(cf)
		}
		if err != nil {
			return fmt.Errorf("log: sync %s after journal replay: %w", p, err)
		}
	}
	if badHeader && records > 0 {
		// A header torn while a new generation started (power cut during
		// a journal checkpoint): every record found holds data already
		// synced to its segment or identical to it, so replaying is safe.
		l.logger.Warn("log: journal header unreadable (torn at a checkpoint?); intact records replayed", "records", records)
	}
	if records > 0 {
		l.logger.Info("log: journal replayed", "records", records, "files", len(touched), "bytes", pos)
	}
	return nil
}

// topicIDOnDisk is the incarnation id in a topic's config.json (0 when
// absent), cached in ids.
func topicIDOnDisk(fs vfs.FS, dir, topic string, ids map[string]uint64) uint64 {
	if id, ok := ids[topic]; ok {
		return id
	}
	var id uint64
	if b, err := readWhole(fs, filepath.Join(dir, topic, topicConfigName)); err == nil {
		if _, fid, err := decodeConfigID(b); err == nil {
			id = fid
		}
	}
	ids[topic] = id
	return id
}

func (l *logImpl) replayInto(touched map[string]bool, path string, at int64, payload []byte) error {
	if !touched[path] {
		if _, err := l.fs.Stat(path); err != nil {
			return nil // segment deleted since: nothing to restore
		}
	}
	cf, err := l.files.get(path, true)
	if err != nil {
		return err
	}
	defer l.files.release(cf)
	touched[path] = true
	f := cf.f
	cur := make([]byte, len(payload))
	if n, _ := f.ReadAt(cur, at); n == len(cur) && bytes.Equal(cur, payload) {
		return nil
	}
	_, err = f.WriteAt(payload, at)
	return err
}
