package errorfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/runnel/runnel/log/vfs"
)

// ErrInjected is the error injectors return when not told otherwise. It
// wraps EIO, so errors.Is(err, syscall.EIO) holds too.
var ErrInjected = fmt.Errorf("errorfs: injected I/O error: %w", syscall.EIO)

// OpKind names a file-system operation.
type OpKind uint8

// Operation kinds. File operations on directory handles use OpSyncDir and
// OpClose.
const (
	OpCreate OpKind = iota
	OpOpen
	OpOpenReadWrite
	OpOpenDir
	OpRemove
	OpRemoveAll
	OpRename
	OpMkdirAll
	OpStat
	OpList
	OpRead
	OpReadAt
	OpWrite
	OpWriteAt
	OpSync
	OpSyncDir
	OpTruncate
	OpPreallocate
	OpFileStat
	OpClose
	numOpKinds
)

var opNames = [numOpKinds]string{"create", "open", "open-rw", "open-dir", "remove", "remove-all",
	"rename", "mkdir-all", "stat", "list", "read", "read-at", "write", "write-at", "sync",
	"sync-dir", "truncate", "preallocate", "file-stat", "close"}

func (k OpKind) String() string {
	if k < numOpKinds {
		return opNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// Kinds is a set of OpKinds.
type Kinds uint32

// KindsOf returns the set holding ks.
func KindsOf(ks ...OpKind) Kinds {
	var s Kinds
	for _, k := range ks {
		s |= 1 << k
	}
	return s
}

// Has reports whether k is in s.
func (s Kinds) Has(k OpKind) bool { return s&(1<<k) != 0 }

// Useful sets.
var (
	// WriteOps are the operations that write file data.
	WriteOps = KindsOf(OpWrite, OpWriteAt)
	// SyncOps are file and directory syncs.
	SyncOps = KindsOf(OpSync, OpSyncDir)
	// MutatingOps change what is (or may become) on disk; a crash "at
	// every I/O operation" stops before each of these.
	MutatingOps = KindsOf(OpCreate, OpOpenReadWrite, OpRemove, OpRemoveAll, OpRename,
		OpMkdirAll, OpWrite, OpWriteAt, OpSync, OpSyncDir, OpTruncate, OpPreallocate)
	// AllOps is every kind.
	AllOps = Kinds(1<<numOpKinds - 1)
)

// Op is one operation about to run.
type Op struct {
	Kind OpKind
	Path string // the file's path (for Rename, the old name)
	New  string // Rename's new name
	Off  int64  // ReadAt, WriteAt, Truncate (size), Preallocate
	Len  int    // bytes to read or write; Preallocate length
	// Seq numbers every operation through the FS from 1; KindSeq numbers
	// operations of this Kind from 1.
	Seq, KindSeq uint64
}

func (op Op) String() string {
	return fmt.Sprintf("#%d %s %s off=%d len=%d", op.Seq, op.Kind, op.Path, op.Off, op.Len)
}

// Injector decides the fate of each operation. MaybeError is called before
// the operation runs, possibly from several goroutines at once; a non-nil
// error fails the operation without running it, except *ShortWrite on a
// write, which writes a prefix first.
type Injector interface {
	MaybeError(op Op) error
}

// AfterInjector is an optional extension of Injector: AfterOp is called
// once an operation that MaybeError let through has run, with its error,
// and returns the error the caller sees. Crasher uses it so that an
// operation still running when the machine "lost power" does not report
// success afterwards.
type AfterInjector interface {
	AfterOp(op Op, err error) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op) error

// MaybeError calls f.
func (f InjectorFunc) MaybeError(op Op) error { return f(op) }

// ShortWrite, returned by an injector for a write, writes the first N bytes
// of the buffer and then fails with Err (ErrInjected when nil): a short or
// torn write.
type ShortWrite struct {
	N   int
	Err error
}

func (e *ShortWrite) Error() string {
	return fmt.Sprintf("errorfs: short write of %d bytes: %v", e.N, e.cause())
}

// Unwrap returns the error the write fails with.
func (e *ShortWrite) Unwrap() error { return e.cause() }

func (e *ShortWrite) cause() error {
	if e.Err == nil {
		return ErrInjected
	}
	return e.Err
}

// FS wraps a vfs.FS, numbering every operation and asking an Injector about
// each before running it.
type FS struct {
	inner  vfs.FS
	inj    atomic.Pointer[injectorBox]
	seq    atomic.Uint64
	counts [numOpKinds]atomic.Uint64
	// failed counts operations the injector failed.
	failed atomic.Uint64
}

type injectorBox struct{ Injector }

var _ vfs.FS = (*FS)(nil)

// Wrap returns inner wrapped by inj (nil: count only).
func Wrap(inner vfs.FS, inj Injector) *FS {
	fs := &FS{inner: inner}
	fs.SetInjector(inj)
	return fs
}

// SetInjector replaces the injector (nil: none); safe at any time.
func (fs *FS) SetInjector(inj Injector) { fs.inj.Store(&injectorBox{inj}) }

// Inner returns the wrapped FS.
func (fs *FS) Inner() vfs.FS { return fs.inner }

// Ops is the number of operations started so far.
func (fs *FS) Ops() uint64 { return fs.seq.Load() }

// Count is the number of operations of kind k started so far.
func (fs *FS) Count(k OpKind) uint64 { return fs.counts[k].Load() }

// CountOf is the number of operations of the kinds in s started so far.
func (fs *FS) CountOf(s Kinds) uint64 {
	var n uint64
	for k := OpKind(0); k < numOpKinds; k++ {
		if s.Has(k) {
			n += fs.counts[k].Load()
		}
	}
	return n
}

// Failed is the number of operations the injector failed.
func (fs *FS) Failed() uint64 { return fs.failed.Load() }

// before numbers op and asks the injector.
func (fs *FS) before(op *Op) error {
	op.Seq = fs.seq.Add(1)
	op.KindSeq = fs.counts[op.Kind].Add(1)
	b := fs.inj.Load()
	if b == nil || b.Injector == nil {
		return nil
	}
	err := b.MaybeError(*op)
	if err != nil {
		fs.failed.Add(1)
	}
	return err
}

// after lets an AfterInjector see (and replace) the result of op.
func (fs *FS) after(op *Op, err error) error {
	b := fs.inj.Load()
	if b == nil || b.Injector == nil {
		return err
	}
	if a, ok := b.Injector.(AfterInjector); ok {
		return a.AfterOp(*op, err)
	}
	return err
}

// opErr shapes an injected error like the OS would.
func opErr(op OpKind, path string, err error) error {
	var sw *ShortWrite
	if errors.As(err, &sw) {
		err = sw.cause()
	}
	return &os.PathError{Op: "errorfs " + op.String(), Path: path, Err: err}
}

func (fs *FS) wrapFile(op *Op, f vfs.File, err error, dir bool) (vfs.File, error) {
	if err = fs.after(op, err); err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return &file{fs: fs, f: f, dir: dir}, nil
}

func (fs *FS) Create(name string) (vfs.File, error) {
	op := Op{Kind: OpCreate, Path: name}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpCreate, name, err)
	}
	f, err := fs.inner.Create(name)
	return fs.wrapFile(&op, f, err, false)
}

func (fs *FS) Open(name string) (vfs.File, error) {
	op := Op{Kind: OpOpen, Path: name}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpOpen, name, err)
	}
	f, err := fs.inner.Open(name)
	return fs.wrapFile(&op, f, err, false)
}

func (fs *FS) OpenReadWrite(name string) (vfs.File, error) {
	op := Op{Kind: OpOpenReadWrite, Path: name}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpOpenReadWrite, name, err)
	}
	f, err := fs.inner.OpenReadWrite(name)
	return fs.wrapFile(&op, f, err, false)
}

func (fs *FS) OpenDir(name string) (vfs.File, error) {
	op := Op{Kind: OpOpenDir, Path: name}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpOpenDir, name, err)
	}
	f, err := fs.inner.OpenDir(name)
	return fs.wrapFile(&op, f, err, true)
}

func (fs *FS) Remove(name string) error {
	op := Op{Kind: OpRemove, Path: name}
	if err := fs.before(&op); err != nil {
		return opErr(OpRemove, name, err)
	}
	return fs.after(&op, fs.inner.Remove(name))
}

func (fs *FS) RemoveAll(name string) error {
	op := Op{Kind: OpRemoveAll, Path: name}
	if err := fs.before(&op); err != nil {
		return opErr(OpRemoveAll, name, err)
	}
	return fs.after(&op, fs.inner.RemoveAll(name))
}

func (fs *FS) Rename(oldname, newname string) error {
	op := Op{Kind: OpRename, Path: oldname, New: newname}
	if err := fs.before(&op); err != nil {
		return &os.LinkError{Op: "errorfs rename", Old: oldname, New: newname, Err: opErr(OpRename, oldname, err).(*os.PathError).Err}
	}
	return fs.after(&op, fs.inner.Rename(oldname, newname))
}

func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	op := Op{Kind: OpMkdirAll, Path: dir}
	if err := fs.before(&op); err != nil {
		return opErr(OpMkdirAll, dir, err)
	}
	return fs.after(&op, fs.inner.MkdirAll(dir, perm))
}

func (fs *FS) Stat(name string) (os.FileInfo, error) {
	op := Op{Kind: OpStat, Path: name}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpStat, name, err)
	}
	fi, err := fs.inner.Stat(name)
	if err = fs.after(&op, err); err != nil {
		return nil, err
	}
	return fi, nil
}

func (fs *FS) List(dir string) ([]string, error) {
	op := Op{Kind: OpList, Path: dir}
	if err := fs.before(&op); err != nil {
		return nil, opErr(OpList, dir, err)
	}
	names, err := fs.inner.List(dir)
	if err = fs.after(&op, err); err != nil {
		return nil, err
	}
	return names, nil
}

// file wraps an open file of an FS.
type file struct {
	fs  *FS
	f   vfs.File
	dir bool
}

func (f *file) Read(p []byte) (int, error) {
	op := Op{Kind: OpRead, Path: f.f.Name(), Len: len(p)}
	if err := f.fs.before(&op); err != nil {
		return 0, opErr(OpRead, f.f.Name(), err)
	}
	n, err := f.f.Read(p)
	return n, f.fs.after(&op, err)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	op := Op{Kind: OpReadAt, Path: f.f.Name(), Off: off, Len: len(p)}
	if err := f.fs.before(&op); err != nil {
		return 0, opErr(OpReadAt, f.f.Name(), err)
	}
	n, err := f.f.ReadAt(p, off)
	return n, f.fs.after(&op, err)
}

// short runs a write of the prefix a *ShortWrite allows, then fails.
func (f *file) short(kind OpKind, err error, p []byte, write func([]byte) (int, error)) (int, error) {
	var sw *ShortWrite
	if errors.As(err, &sw) && sw.N > 0 {
		n, werr := write(p[:min(sw.N, len(p))])
		if werr != nil {
			return n, werr
		}
		return n, opErr(kind, f.f.Name(), err)
	}
	return 0, opErr(kind, f.f.Name(), err)
}

func (f *file) Write(p []byte) (int, error) {
	op := Op{Kind: OpWrite, Path: f.f.Name(), Len: len(p)}
	if err := f.fs.before(&op); err != nil {
		return f.short(OpWrite, err, p, f.f.Write)
	}
	n, err := f.f.Write(p)
	return n, f.fs.after(&op, err)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	op := Op{Kind: OpWriteAt, Path: f.f.Name(), Off: off, Len: len(p)}
	if err := f.fs.before(&op); err != nil {
		return f.short(OpWriteAt, err, p, func(q []byte) (int, error) { return f.f.WriteAt(q, off) })
	}
	n, err := f.f.WriteAt(p, off)
	return n, f.fs.after(&op, err)
}

func (f *file) Close() error {
	op := Op{Kind: OpClose, Path: f.f.Name()}
	if err := f.fs.before(&op); err != nil {
		f.f.Close() // the descriptor is gone either way, as with close(2)
		return opErr(OpClose, f.f.Name(), err)
	}
	return f.fs.after(&op, f.f.Close())
}

func (f *file) Sync() error {
	kind := OpSync
	if f.dir {
		kind = OpSyncDir
	}
	op := Op{Kind: kind, Path: f.f.Name()}
	if err := f.fs.before(&op); err != nil {
		return opErr(kind, f.f.Name(), err)
	}
	return f.fs.after(&op, f.f.Sync())
}

func (f *file) Truncate(size int64) error {
	op := Op{Kind: OpTruncate, Path: f.f.Name(), Off: size}
	if err := f.fs.before(&op); err != nil {
		return opErr(OpTruncate, f.f.Name(), err)
	}
	return f.fs.after(&op, f.f.Truncate(size))
}

func (f *file) Preallocate(off, n int64) error {
	op := Op{Kind: OpPreallocate, Path: f.f.Name(), Off: off, Len: int(n)}
	if err := f.fs.before(&op); err != nil {
		return opErr(OpPreallocate, f.f.Name(), err)
	}
	return f.fs.after(&op, f.f.Preallocate(off, n))
}

func (f *file) Stat() (os.FileInfo, error) {
	op := Op{Kind: OpFileStat, Path: f.f.Name()}
	if err := f.fs.before(&op); err != nil {
		return nil, opErr(OpFileStat, f.f.Name(), err)
	}
	fi, err := f.f.Stat()
	if err = f.fs.after(&op, err); err != nil {
		return nil, err
	}
	return fi, nil
}

func (f *file) Name() string { return f.f.Name() }

// PathHas returns a filter for injectors: true when the op's path contains
// any of subs (e.g. ".log" to hit segment files only).
func PathHas(subs ...string) func(Op) bool {
	return func(op Op) bool {
		for _, s := range subs {
			if strings.Contains(op.Path, s) {
				return true
			}
		}
		return false
	}
}
