package errorfs

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runnel/runnel/log/vfs"
)

// MemFS is an in-memory vfs.FS that models what is on stable storage (see
// the package doc). Safe for concurrent use.
type MemFS struct {
	// mu guards every node reachable from root, rng and crashes.
	mu      sync.Mutex
	root    *node
	rng     *rand.Rand
	crashes uint64
}

var _ vfs.FS = (*MemFS)(nil)

// node is a file or a directory.
type node struct {
	isDir   bool
	mode    os.FileMode
	modTime time.Time

	// Files.
	data    []byte    // current content
	synced  []byte    // content on stable storage
	pending []pending // writes and truncates since the last Sync, in order
	// lost are byte ranges whose dirty pages the kernel dropped after a
	// failed sync (FailSync): later syncs do not persist them until they
	// are written again.
	lost []span

	// Directories.
	children       map[string]*node // current entries
	syncedChildren map[string]*node // entries on stable storage
}

// span is the byte range [off, end).
type span struct{ off, end int64 }

// pending is one unsynced change to a file: a write of data at off, or a
// truncate to size (data == nil).
type pending struct {
	off  int64
	data []byte
	size int64
}

// NewMem returns an empty MemFS whose random choices (torn write lengths)
// come from seed.
func NewMem(seed uint64) *MemFS {
	return &MemFS{root: newDir(0o755), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func newDir(mode os.FileMode) *node {
	return &node{isDir: true, mode: mode | os.ModeDir, modTime: time.Now(),
		children: map[string]*node{}, syncedChildren: map[string]*node{}}
}

func newFile() *node { return &node{mode: 0o644, modTime: time.Now()} }

// split cleans name into path components below the root.
func split(name string) []string {
	c := filepath.Clean("/" + name)
	if c == "/" {
		return nil
	}
	return strings.Split(c[1:], "/")
}

func pathErr(op, name string, err error) error { return &os.PathError{Op: op, Path: name, Err: err} }

// lookupLocked returns the node at name (nil, ENOENT/ENOTDIR otherwise).
func (fs *MemFS) lookupLocked(name string) (*node, error) {
	n := fs.root
	for _, c := range split(name) {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		next, ok := n.children[c]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = next
	}
	return n, nil
}

// parentLocked returns the directory holding name and name's base.
func (fs *MemFS) parentLocked(name string) (*node, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", syscall.EINVAL
	}
	dir, err := fs.lookupLocked("/" + strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !dir.isDir {
		return nil, "", syscall.ENOTDIR
	}
	return dir, parts[len(parts)-1], nil
}

// Create creates or truncates name for reading and writing.
func (fs *MemFS) Create(name string) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parentLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, ok := dir.children[base]
	switch {
	case ok && n.isDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	case ok:
		n.truncateLocked(0)
	default:
		n = newFile()
		dir.children[base] = n
		dir.modTime = time.Now()
	}
	return &memFile{fs: fs, n: n, name: name, write: true}, nil
}

// Open opens name read-only.
func (fs *MemFS) Open(name string) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &memFile{fs: fs, n: n, name: name}, nil
}

// OpenReadWrite opens name for reading and writing, creating it if missing.
func (fs *MemFS) OpenReadWrite(name string) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parentLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, ok := dir.children[base]
	switch {
	case ok && n.isDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	case !ok:
		n = newFile()
		dir.children[base] = n
		dir.modTime = time.Now()
	}
	return &memFile{fs: fs, n: n, name: name, write: true}, nil
}

// OpenDir opens a directory so it can be synced.
func (fs *MemFS) OpenDir(name string) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	// Like the OS implementation (no O_DIRECTORY), a file opens too.
	return &memFile{fs: fs, n: n, name: name}, nil
}

// Remove removes a file or an empty directory.
func (fs *MemFS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parentLocked(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	return nil
}

// RemoveAll removes name and everything below it; a missing name is not an
// error (as os.RemoveAll).
func (fs *MemFS) RemoveAll(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parentLocked(name)
	if err != nil {
		if err == syscall.ENOENT {
			return nil
		}
		return pathErr("removeall", name, err)
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	return nil
}

// Rename moves oldname to newname, replacing a file (or empty directory)
// there.
func (fs *MemFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	od, ob, err := fs.parentLocked(oldname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	n, ok := od.children[ob]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOENT}
	}
	nd, nb, err := fs.parentLocked(newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if t, ok := nd.children[nb]; ok && t != n {
		switch {
		case t.isDir && !n.isDir:
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EISDIR}
		case !t.isDir && n.isDir:
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOTDIR}
		case t.isDir && len(t.children) > 0:
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOTEMPTY}
		}
	}
	if n.isDir && strings.HasPrefix(filepath.Clean("/"+newname)+"/", filepath.Clean("/"+oldname)+"/") {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EINVAL}
	}
	delete(od.children, ob)
	nd.children[nb] = n
	od.modTime, nd.modTime = time.Now(), time.Now()
	return nil
}

// MkdirAll creates dir and every missing parent.
func (fs *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := fs.root
	for _, c := range split(dir) {
		next, ok := n.children[c]
		if !ok {
			next = newDir(perm)
			n.children[c] = next
			n.modTime = time.Now()
		} else if !next.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		n = next
	}
	return nil
}

// MkdirAllSynced is MkdirAll with dir and each of its parents synced: a
// directory that already existed, durably, before a test's crash model
// begins.
func (fs *MemFS) MkdirAllSynced(dir string, perm os.FileMode) error {
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if err := vfs.SyncDir(fs, d); err != nil {
			return err
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Stat describes name.
func (fs *MemFS) Stat(name string) (os.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.infoLocked(filepath.Base(filepath.Clean("/" + name))), nil
}

// List returns the sorted names in dir.
func (fs *MemFS) List(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(dir)
	if err != nil {
		return nil, pathErr("open", dir, err)
	}
	if !n.isDir {
		return nil, pathErr("readdirent", dir, syscall.ENOTDIR)
	}
	out := make([]string, 0, len(n.children))
	for name := range n.children {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// ReadFile returns a copy of name's current content (a test convenience).
func (fs *MemFS) ReadFile(name string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if n.isDir {
		return nil, pathErr("read", name, syscall.EISDIR)
	}
	return append([]byte(nil), n.data...), nil
}

// Walk calls fn for every file (not directory) below root with its path
// and current size, in lexical order.
func (fs *MemFS) Walk(root string, fn func(path string, size int64)) error {
	type item struct {
		path string
		size int64
	}
	var items []item
	fs.mu.Lock()
	n, err := fs.lookupLocked(root)
	if err != nil {
		fs.mu.Unlock()
		return pathErr("open", root, err)
	}
	seen := map[*node]bool{}
	var walk func(p string, n *node)
	walk = func(p string, n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.isDir {
			items = append(items, item{p, int64(len(n.data))})
			return
		}
		for name, c := range n.children {
			walk(filepath.Join(p, name), c)
		}
	}
	walk(filepath.Clean("/"+root), n)
	fs.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })
	for _, it := range items {
		fn(it.path, it.size)
	}
	return nil
}

// Unsynced reports whether anything below root (file data or directory
// entries) is not yet on stable storage: a clean shutdown leaves false.
func (fs *MemFS) Unsynced(root string) bool { return len(fs.UnsyncedPaths(root)) > 0 }

// UnsyncedPaths lists what below root is not on stable storage: files with
// unsynced writes, and directories (suffixed "/") whose entries changed
// since their last sync.
func (fs *MemFS) UnsyncedPaths(root string) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(root)
	if err != nil {
		return nil
	}
	var out []string
	seen := map[*node]bool{}
	var walk func(p string, n *node)
	walk = func(p string, n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.isDir {
			if len(n.pending) > 0 {
				out = append(out, p)
			}
			return
		}
		dirty := len(n.children) != len(n.syncedChildren)
		for name, c := range n.children {
			if n.syncedChildren[name] != c {
				dirty = true
			}
			walk(filepath.Join(p, name), c)
		}
		if dirty {
			out = append(out, p+"/")
		}
	}
	walk(filepath.Clean("/"+root), n)
	sort.Strings(out)
	return out
}

func (n *node) infoLocked(name string) os.FileInfo {
	return fileInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}

// writeAtLocked writes p at off, growing the file with zeros as needed.
func (n *node) writeAtLocked(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(n.data)) {
		if end <= int64(cap(n.data)) {
			old := len(n.data)
			n.data = n.data[:end]
			clear(n.data[old:]) // no stale bytes from before a truncate
		} else {
			grown := make([]byte, end, end+end/2)
			copy(grown, n.data)
			n.data = grown
		}
	}
	copy(n.data[off:], p)
	n.pending = append(n.pending, pending{off: off, data: append([]byte(nil), p...)})
	if len(n.lost) > 0 {
		n.lost = subtract(n.lost, span{off, off + int64(len(p))})
	}
	n.modTime = time.Now()
}

func (n *node) truncateLocked(size int64) {
	n.data = resize(n.data, size)
	n.pending = append(n.pending, pending{size: size})
	n.modTime = time.Now()
}

// resize returns b cut or zero-extended to size (a new slice when growing
// beyond cap).
func resize(b []byte, size int64) []byte {
	if size <= int64(len(b)) {
		return b[:size]
	}
	if size <= int64(cap(b)) {
		old := len(b)
		b = b[:size]
		clear(b[old:])
		return b
	}
	out := make([]byte, size)
	copy(out, b)
	return out
}

// syncLocked makes the file's current content stable.
func (n *node) syncLocked() {
	if n.isDir {
		n.syncedChildren = make(map[string]*node, len(n.children))
		for k, v := range n.children {
			n.syncedChildren[k] = v
		}
		return
	}
	if len(n.pending) == 0 {
		return
	}
	old := n.synced
	n.synced = append([]byte(nil), n.data...)
	for _, l := range n.lost {
		for i := l.off; i < l.end && i < int64(len(n.synced)); i++ {
			if i < int64(len(old)) {
				n.synced[i] = old[i]
			} else {
				n.synced[i] = 0
			}
		}
	}
	n.pending = nil
}

// subtract removes w from spans.
func subtract(spans []span, w span) []span {
	out := spans[:0:0]
	for _, s := range spans {
		if s.end <= w.off || s.off >= w.end {
			out = append(out, s)
			continue
		}
		if s.off < w.off {
			out = append(out, span{s.off, w.off})
		}
		if s.end > w.end {
			out = append(out, span{w.end, s.end})
		}
	}
	return out
}

// FailSync models what Linux does when fsync of name fails: the dirty
// pages are dropped (marked clean), so the unsynced writes stay readable
// but never reach stable storage, even if a later sync succeeds, until the
// bytes are written again. An fsync retried after a failure thus reports
// success for data that is not on disk; Crash shows the loss.
func (fs *MemFS) FailSync(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return pathErr("fsync", name, err)
	}
	if n.isDir {
		return nil
	}
	for _, p := range n.pending {
		if p.data != nil {
			n.lost = append(n.lost, span{p.off, p.off + int64(len(p.data))})
		}
	}
	// Nothing of it reached the disk; the pages are clean now.
	n.pending = nil
	return nil
}

type fileInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() os.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.modTime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

// memFile is an open MemFS file or directory. Like an OS file descriptor it
// keeps working on its node after the name is removed or renamed.
type memFile struct {
	fs    *MemFS
	n     *node
	name  string
	write bool
	// posMu guards pos and closed.
	posMu  sync.Mutex
	pos    int64
	closed bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, os.ErrClosed)
	}
	if f.n.isDir && op != "sync" && op != "stat" && op != "close" {
		return pathErr(op, f.name, syscall.EISDIR)
	}
	if write && !f.write {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.posMu.Lock()
	defer f.posMu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	n, err := f.readAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.posMu.Lock()
	err := f.check("read", false)
	f.posMu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("readat", f.name, syscall.EINVAL)
	}
	return f.readAt(p, off)
}

func (f *memFile) readAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.posMu.Lock()
	defer f.posMu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	f.n.writeAtLocked(p, f.pos)
	f.fs.mu.Unlock()
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.posMu.Lock()
	err := f.check("write", true)
	f.posMu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("writeat", f.name, syscall.EINVAL)
	}
	f.fs.mu.Lock()
	f.n.writeAtLocked(p, off)
	f.fs.mu.Unlock()
	return len(p), nil
}

func (f *memFile) Close() error {
	f.posMu.Lock()
	defer f.posMu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *memFile) Sync() error {
	f.posMu.Lock()
	err := f.check("sync", false)
	f.posMu.Unlock()
	if err != nil {
		return err
	}
	f.fs.mu.Lock()
	f.n.syncLocked()
	f.fs.mu.Unlock()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.posMu.Lock()
	err := f.check("truncate", true)
	f.posMu.Unlock()
	if err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.fs.mu.Lock()
	f.n.truncateLocked(size)
	f.fs.mu.Unlock()
	return nil
}

// Preallocate does nothing: MemFS never runs out of blocks.
func (f *memFile) Preallocate(off, n int64) error {
	f.posMu.Lock()
	defer f.posMu.Unlock()
	return f.check("fallocate", true)
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.posMu.Lock()
	err := f.check("stat", false)
	f.posMu.Unlock()
	if err != nil {
		return nil, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.n.infoLocked(filepath.Base(f.name)), nil
}

func (f *memFile) Name() string { return f.name }
