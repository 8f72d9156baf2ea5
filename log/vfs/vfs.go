// Package vfs is the small file-system interface the log's storage code
// (segments, indexes, shared files, the journal, the checkpoint, topic
// configs) goes through, so tests can substitute a fault-injecting or
// crash-simulating implementation (see vfs/errorfs).
//
// The metadata store (log/meta, meta.db) does not: bbolt opens, locks and
// memory-maps its file through the operating system itself.
package vfs

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync flushes the file's data (and the metadata needed to read it
	// back: fdatasync) to stable storage.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Preallocate reserves [off, off+n) on disk without changing the
	// file's size where the platform allows (fallocate KEEP_SIZE), so later
	// writes do not need block allocation. Best effort: an implementation
	// may do nothing.
	Preallocate(off, n int64) error
	Stat() (os.FileInfo, error)
	// Name is the path the file was opened with.
	Name() string
}

// FS is a file system.
type FS interface {
	// Create creates or truncates name for reading and writing.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens name for reading and writing, creating it if
	// missing, without truncating.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so it can be synced after creating,
	// renaming or removing entries.
	OpenDir(name string) (File, error)
	Remove(name string) error
	// RemoveAll removes a directory tree.
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	Stat(name string) (os.FileInfo, error)
	// List returns the names (not paths) in dir, sorted.
	List(dir string) ([]string, error)
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

func (f osFile) Preallocate(off, n int64) error { return preallocate(f.File, off, n) }

func wrap(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Create(name string) (File, error) {
	return wrap(os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o644))
}

func (osFS) Open(name string) (File, error) {
	return wrap(os.OpenFile(name, os.O_RDONLY|syscall.O_CLOEXEC, 0))
}

func (osFS) OpenReadWrite(name string) (File, error) {
	return wrap(os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644))
}

func (osFS) OpenDir(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return osDir{osFile{f}}, nil
}

// osDir syncs with fsync (fdatasync on a directory is not meaningful everywhere).
type osDir struct{ osFile }

func (d osDir) Sync() error { return d.File.Sync() }

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                 { return os.RemoveAll(name) }
func (osFS) Rename(o, n string) error                    { return os.Rename(o, n) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	sort.Strings(out)
	return out, nil
}

// SyncDir syncs the directory holding path (after create, rename, remove).
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
