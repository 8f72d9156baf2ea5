package log

// Reading a partition whose segments live (in part) in shared files:
// the virtual segment reader over their entries.

import (
	"io"
	"sort"
)

// vreader reads a virtual segment through its runs, loading the extents
// of a run left in an extent index when it gets there. held says the
// caller holds seg.mu.
type vreader struct {
	l    *logImpl
	seg  *segment
	held bool
	cur  vrun // the run last used, extents loaded
	ok   bool
}

// runAt returns the run holding virtual position off, with its extents.
func (r *vreader) runAt(off int64) (vrun, bool, error) {
	if r.ok && off >= r.cur.vpos && off < r.cur.vpos+r.cur.n {
		return r.cur, true, nil
	}
	if !r.held {
		r.seg.mu.Lock()
	}
	v := r.seg.virt
	i := sort.Search(len(v.runs), func(i int) bool { return v.runs[i].vpos+v.runs[i].n > off })
	var run vrun
	found := i < len(v.runs) && v.runs[i].vpos <= off
	if found {
		run = v.runs[i]
	}
	key := v.key
	if !r.held {
		r.seg.mu.Unlock()
	}
	if !found {
		return run, false, nil
	}
	ext, err := r.l.shared.extents(key, &run)
	if err != nil {
		return run, false, err
	}
	run.ext = ext
	r.cur, r.ok = run, true
	return run, true, nil
}

func (r *vreader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		run, ok, err := r.runAt(off)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, io.EOF
		}
		i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > off })
		if i >= len(run.ext) || run.ext[i].vpos > off {
			return n, io.EOF
		}
		e := run.ext[i]
		k := min(int64(len(b)-n), e.vpos+e.n-off)
		cf, err := r.l.files.get(run.file.path, false)
		if err != nil {
			return n, err
		}
		m, err := cf.f.ReadAt(b[n:n+int(k)], e.fpos+off-e.vpos)
		r.l.files.release(cf)
		n += m
		off += int64(m)
		if m < int(k) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// locate maps a virtual position to its shared file and file position.
func (r *vreader) locate(vpos int64) (string, int64) {
	run, ok, err := r.runAt(vpos)
	if !ok || err != nil {
		return "", vpos
	}
	i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > vpos })
	if i >= len(run.ext) {
		return run.file.rel, -1
	}
	e := run.ext[i]
	return run.file.rel, e.fpos + vpos - e.vpos
}

// entryRange returns where the entry holding virtual position vpos ends
// and the offset after its batches (end 0: unknown; next -1: unknown).
// The offsets come from the run (its last entry) or the file's extent
// index (else its intact entries), never from the batch headers: those
// may be the damage, and the entry's own CRC is not checked by reads.
func (r *vreader) entryRange(vpos int64) (end, next int64) {
	run, ok, err := r.runAt(vpos)
	if !ok || err != nil {
		return 0, -1
	}
	i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > vpos })
	if i >= len(run.ext) {
		return 0, -1
	}
	end = run.ext[i].vpos + run.ext[i].n
	if i == len(run.ext)-1 {
		return end, run.next
	}
	ents, _, err := r.l.shared.entriesIn(run.file, r.seg.virt.key, run.sec, run.base, run.next)
	if err != nil {
		return end, -1
	}
	// Entries by payload position: the damaged one may be missing when
	// they come from the file (its intact entries only); the next one's
	// base then ends it (offsets are dense within a run).
	for _, e := range ents {
		switch e.fpos {
		case run.ext[i].fpos:
			return end, e.next
		case run.ext[i+1].fpos:
			return end, e.base
		}
	}
	return end, -1
}

// segReader returns a reader of seg's bytes (its file, or its extents in
// shared files) and a release function.
func (l *logImpl) segReader(seg *segment) (io.ReaderAt, func(), error) {
	if seg.virt == nil {
		cf, err := l.files.get(seg.path, false)
		if err != nil {
			return nil, nil, err
		}
		return cf.f, func() { l.files.release(cf) }, nil
	}
	return &vreader{l: l, seg: seg}, func() {}, nil
}

// damageLocation names where virtual position pos of seg lies on disk.
func (l *logImpl) damageLocation(seg *segment, pos int64) (string, int64) {
	if seg.virt == nil {
		return seg.rel, pos
	}
	if f, at := (&vreader{l: l, seg: seg}).locate(pos); f != "" {
		return f, at
	}
	return seg.rel, pos
}
