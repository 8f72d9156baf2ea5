package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runnel/runnel/log/vfs"
)

// Data format generations (see doc.go, "Upgrades and downgrades"). Every
// file of a data dir carries its own version; the generation says which
// set of versions a data dir may hold, so a binary can refuse, before it
// reads anything, a data dir that holds a file it would misread.
//
// DataFormat is the newest generation this code reads and writes.
// DataFormatReadableFrom is the oldest generation that can read a data dir
// this code writes as long as it holds no transaction. Raise them whenever
// a file gets a version (or a content) that older code would misread or
// reject. Both only grow.
//
// Generation 2 adds transactions: a partition's batches may carry the
// transactional attribute and control batches (commit and abort markers),
// which generation 1 serves as plain records (aborted records as
// committed). A data dir is raised to generation 2, readable from 2, by
// its first transactional batch (raiseDataFormat), synced before that
// batch is written; one that never held one stays at 1, without a marker.
const (
	DataFormat             = 2
	DataFormatReadableFrom = 1
	DataFormatTransactions = 2 // a data dir holding transactions is at this generation (readable from it on)
)

// The data format marker (<dir>/~format) is a fileHeader whose u64 holds
// the highest generation that has opened the dir (high 32 bits) and the
// oldest generation that can read it (low 32 bits). A data dir without one
// is generation 1, readable from 1: the marker is written only once a
// generation past 1 opens the dir, so every release reads a generation-1
// dir as it always did. Never change these constants.
const (
	formatName    = "~format" // '~' is not valid in a topic name
	formatMagic   = "RNLFRMT\x00"
	formatVersion = 1
)

// ErrNewerFormat: the data dir was written by a newer runnel, in a format
// this one would misread. Open and CheckDir refuse it; nothing is changed.
var ErrNewerFormat = errors.New("log: data dir written by a newer runnel")

// Format is one on-disk file format: the version written and the oldest
// version still read (doc.go draws each).
type Format struct {
	Name      string // the file, as doc.go names it
	Writes    int    // version written
	ReadsFrom int    // oldest version read
}

// Formats lists the file formats this code reads and writes.
func Formats() []Format {
	return []Format{
		{"data format marker (~format, none at format 1)", formatVersion, formatVersion},
		{"transactional mark (<partition>/transactional)", 1, 1},
		{"segment (.log, Kafka RecordBatch magic)", 2, 2},
		{"offset and time index (.index, .timeindex)", indexVersion, indexVersion},
		{"recovery checkpoint (recovery-point)", checkpointVersion, 1},
		{"shared segment (~shared/*.slog)", sharedVersion, 1},
		{"shared extent index (~shared/*.sidx)", sidxVersion, sidxVersion},
		{"journal (journal)", journalVersion, journalVersion},
		{"node epoch (~epoch)", nodeEpochVersion, nodeEpochVersion},
		{"leader-epoch history (leader-epochs)", epochFileVersion, epochFileVersion},
	}
}

// dataFormat is what a data dir's marker says.
type dataFormat struct {
	writtenBy, readableFrom uint32
}

// readDataFormat reads dir's marker; ok is false when there is none.
func readDataFormat(fs vfs.FS, dir string) (f dataFormat, ok bool, err error) {
	path := filepath.Join(dir, formatName)
	b, err := readWhole(fs, path)
	if os.IsNotExist(err) {
		return dataFormat{}, false, nil
	}
	if err != nil {
		return dataFormat{}, false, fmt.Errorf("log: read %s: %w", path, err)
	}
	v, n, good := parseFileHeader(b, formatMagic)
	switch {
	case !good || len(b) != 24:
		return dataFormat{}, false, fmt.Errorf("log: %s is damaged (it names the data format; remove it only if this runnel's release or an older one wrote the data dir): %w", path, ErrCorrupt)
	case v > formatVersion:
		return dataFormat{}, false, fmt.Errorf("%w: %s has version %d (this runnel reads %d): upgrade runnel", ErrNewerFormat, path, v, formatVersion)
	}
	return dataFormat{writtenBy: uint32(n >> 32), readableFrom: uint32(n)}, true, nil
}

// checkDataFormat refuses a data dir that generation gen cannot read, and
// returns what its marker says (generation 1 without one).
func checkDataFormat(fs vfs.FS, dir string, gen uint32) (dataFormat, error) {
	f, _, err := checkedDataFormat(fs, dir, gen)
	return f, err
}

// checkedDataFormat is checkDataFormat that also says whether dir has a
// marker.
func checkedDataFormat(fs vfs.FS, dir string, gen uint32) (dataFormat, bool, error) {
	f, ok, err := readDataFormat(fs, dir)
	if err != nil {
		return f, ok, err
	}
	if !ok {
		f = dataFormat{writtenBy: 1, readableFrom: 1}
	}
	if f.readableFrom > gen {
		return f, ok, fmt.Errorf("%w: %s holds data format %d, readable from format %d on; this runnel reads format %d and older: upgrade runnel (going back needs a copy of the data dir from before the upgrade)",
			ErrNewerFormat, dir, f.writtenBy, f.readableFrom, gen)
	}
	return f, ok, nil
}

// openDataFormat checks dir's marker and records generation gen, whose
// writes generation from on can read, in it before anything is written:
// from then on an older binary that cannot read what gen writes refuses
// the dir. A dir without a marker gets none while from is 1 (it stays
// generation 1). It returns what the marker says afterwards.
func openDataFormat(fs vfs.FS, dir string, gen, from uint32) (dataFormat, error) {
	f, ok, err := checkedDataFormat(fs, dir, gen)
	if err != nil {
		return f, err
	}
	want := dataFormat{writtenBy: max(f.writtenBy, gen), readableFrom: max(f.readableFrom, from)}
	if want == f || (!ok && want.readableFrom <= 1) {
		return f, nil
	}
	if err := writeDataFormat(fs, dir, want); err != nil {
		return f, err
	}
	return want, nil
}

func writeDataFormat(fs vfs.FS, dir string, f dataFormat) error {
	h := fileHeader(formatMagic, formatVersion, uint64(f.writtenBy)<<32|uint64(f.readableFrom))
	if err := writeFileAtomic(fs, filepath.Join(dir, formatName), h); err != nil {
		return fmt.Errorf("log: write %s: %w", formatName, err)
	}
	return nil
}

// raiseDataFormat records in the marker that the data dir can only be
// read from generation to on, durably (the marker file and its directory
// synced) before it returns: the caller writes what needs that generation
// only after. Concurrent calls write it once.
func (l *logImpl) raiseDataFormat(to uint32) error {
	l.formatMu.Lock()
	defer l.formatMu.Unlock()
	if l.format.readableFrom >= to {
		return nil
	}
	want := dataFormat{writtenBy: max(l.format.writtenBy, DataFormat), readableFrom: to}
	if err := writeDataFormat(l.fs, l.dir, want); err != nil {
		return err
	}
	l.format = want
	return nil
}
