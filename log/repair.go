package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/runnel/runnel/log/vfs"
)

// Repair: moving damaged data aside so that readers pass over it.
//
// A damaged batch in the middle of a partition stops every reader there
// (Read answers *CorruptError, Kafka consumers CORRUPT_MESSAGE). Repair,
// run offline with the damage Check found, makes the damaged offsets a
// gap, as Kafka's compacted topics have: readers go on with the next
// intact batch. For each damaged range of a partition:
//
//   - in a segment file: the damaged bytes are moved to a file of their
//     own beside the segment, <from>-<to>.damaged (for inspection), the
//     segment is cut where the damage starts and the intact batches after
//     it move to a new segment file named by their first offset;
//   - elsewhere (a damaged entry of a shared segment file, offsets missing
//     between segments): an empty <from>-<to>.damaged records the range.
//
// A <from>-<to>.damaged file in a partition directory is the record of a
// repair (never change the name format): open reads it, Read serves the
// next intact batch for an offset in [from, to), and damage found in the
// range is reported Repaired (not making the node unready). The recovery
// checkpoint is removed, so the next open scans every segment.
const damagedSuffix = ".damaged"

func damagedName(from, to int64) string {
	return strconv.FormatInt(from, 10) + "-" + strconv.FormatInt(to, 10) + damagedSuffix
}

// repairedRanges parses the <from>-<to>.damaged names in a partition
// directory listing.
func repairedRanges(names []string) [][2]int64 {
	var out [][2]int64
	for _, n := range names {
		r, ok := strings.CutSuffix(n, damagedSuffix)
		if !ok {
			continue
		}
		a, b, ok := strings.Cut(r, "-")
		if !ok {
			continue
		}
		from, err1 := strconv.ParseInt(a, 10, 64)
		to, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil && from >= 0 && to > from {
			out = append(out, [2]int64{from, to})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// repairedLocked returns the end of the repaired range holding offset
// (false when none does).
func (p *partition) repairedLocked(offset int64) (int64, bool) {
	for _, r := range p.repaired {
		if offset >= r[0] && offset < r[1] {
			return r[1], true
		}
	}
	return 0, false
}

// isRepaired reports whether [from, to) lies in repaired ranges.
func (p *partition) isRepaired(from, to int64) bool {
	if to < 0 {
		return false
	}
	return coveredBy(p.repaired, from, to)
}

// ErrNotRepairable: Repair cannot make the damage a gap (it runs to the
// end of the partition, so the offsets after it are unknown).
var ErrNotRepairable = errors.New("log: damage not repairable")

// Repair moves the damage d (a partition range Check or CheckDir found)
// aside in the data directory dir (see above). The log must not be open
// on dir. It returns what it did, for the operator.
func Repair(dir string, d Damage) (string, error) { return RepairFS(vfs.Default, dir, d) }

// RepairFS is Repair on a given file system.
func RepairFS(fs vfs.FS, dir string, d Damage) (string, error) {
	if !d.PartitionRange() || d.From < 0 || d.To <= d.From {
		return "", fmt.Errorf("%w: %s: the offsets it holds are not known", ErrNotRepairable, d.File)
	}
	pdir := filepath.Join(dir, d.Topic, strconv.Itoa(int(d.Partition)))
	aside := filepath.Join(pdir, damagedName(d.From, d.To))
	var did string
	base, isSeg := parseSegmentName(filepath.Base(d.File))
	if isSeg && d.Offset >= 0 && filepath.Dir(d.File) == filepath.Join(d.Topic, strconv.Itoa(int(d.Partition))) {
		n, err := splitSegment(fs, filepath.Join(dir, d.File), base, d, aside)
		if err != nil {
			return "", err
		}
		did = fmt.Sprintf("moved %d damaged bytes of %s (from byte %d) to %s; offsets %d-%d are skipped", n, d.File, d.Offset, filepath.Join(d.Topic, strconv.Itoa(int(d.Partition)), filepath.Base(aside)), d.From, d.To-1)
	} else {
		if err := writeFileAtomic(fs, aside, nil); err != nil {
			return "", fmt.Errorf("log: record repair of %s: %w", d.RangeString(), err)
		}
		did = fmt.Sprintf("offsets %d-%d of %s/%d are skipped (damage in %s, kept as it is)", d.From, d.To-1, d.Topic, d.Partition, d.File)
	}
	// The next open scans every segment.
	if err := fs.Remove(filepath.Join(dir, checkpointName)); err != nil && !os.IsNotExist(err) {
		return did, fmt.Errorf("log: remove the recovery checkpoint: %w", err)
	}
	return did, vfs.SyncDir(fs, dir)
}

// splitSegment cuts the segment file at path at d.Offset: the damaged
// bytes up to the next intact batch (of offset d.To) go to aside, the
// batches from there to a new segment file. It returns the bytes moved
// aside.
func splitSegment(fs vfs.FS, path string, base int64, d Damage, aside string) (int64, error) {
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		return 0, fmt.Errorf("log: open %s: %w", d.File, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if d.Offset >= size {
		return 0, fmt.Errorf("%w: %s is %d bytes, the damage is at %d", ErrNotRepairable, d.File, size, d.Offset)
	}
	end := resync(f, d.Offset+1, size, d.From, d.From+1<<31)
	if end >= 0 {
		h, _, _, err := newScanner(f, end, size, false).next()
		if err != nil || h.BaseOffset != d.To {
			end = -1
		}
	}
	if end < 0 {
		// No intact batch after the damage in this file: the range ends
		// with the file (d.To is the next segment's first offset).
		names, _ := fs.List(filepath.Dir(path))
		next := int64(-1)
		for _, n := range names {
			if b, ok := parseSegmentName(n); ok && b > base && (next < 0 || b < next) {
				next = b
			}
		}
		if next != d.To {
			return 0, fmt.Errorf("%w: the damage in %s runs to the end of the partition", ErrNotRepairable, d.File)
		}
		end = size
	}
	read := func(from, to int64) ([]byte, error) {
		b := make([]byte, to-from)
		if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
	bad, err := read(d.Offset, end)
	if err != nil {
		return 0, err
	}
	if err := writeFileAtomic(fs, aside, bad); err != nil {
		return 0, fmt.Errorf("log: write %s: %w", aside, err)
	}
	if end < size {
		tail, err := read(end, size)
		if err != nil {
			return 0, err
		}
		if err := writeFileAtomic(fs, filepath.Join(filepath.Dir(path), segmentName(d.To)), tail); err != nil {
			return 0, fmt.Errorf("log: write the segment after the damage: %w", err)
		}
	}
	if err := f.Truncate(d.Offset); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	// The cut segment's indexes are rebuilt at open.
	for _, p := range []string{indexPath(path), timeIndexPath(path)} {
		if err := fs.Remove(p); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
	}
	return end - d.Offset, vfs.SyncDir(fs, filepath.Dir(path))
}
