package log

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/runnel/runnel/log/vfs"
)

// fileCache bounds the open segment file handles: an LRU of files keyed by
// path. A handle in use (refs > 0) is never closed; when every cached handle
// is in use the cache may exceed its bound until they are released.
type fileCache struct {
	fs         vfs.FS
	max        int
	outOfFiles *atomic.Uint64 // counts opens that failed for want of a descriptor

	mu    sync.Mutex // guards files, lru
	files map[string]*cachedFile
	lru   *list.List // of *cachedFile, front = most recently used
}

type cachedFile struct {
	path     string
	f        vfs.File
	writable bool
	refs     int
	elem     *list.Element
}

func newFileCache(fs vfs.FS, max int, outOfFiles *atomic.Uint64) *fileCache {
	return &fileCache{fs: fs, max: max, outOfFiles: outOfFiles, files: map[string]*cachedFile{}, lru: list.New()}
}

// get returns an open handle for path (read-write if writable; a read-only
// handle is reopened read-write when needed). Call release when done.
func (c *fileCache) get(path string, writable bool) (*cachedFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cf, ok := c.files[path]; ok {
		if !writable || cf.writable {
			cf.refs++
			c.lru.MoveToFront(cf.elem)
			return cf, nil
		}
		if cf.refs == 0 {
			c.closeLocked(cf)
		}
	}
	c.evictLocked(1)
	f, err := c.openFile(path, writable)
	if err != nil && isOutOfFiles(err) && c.closeIdleLocked() > 0 {
		// Out of descriptors (a connection flood, another process):
		// the idle cached handles are the log's reserve. Counted when
		// that was enough (a failure is counted by the caller).
		if f, err = c.openFile(path, writable); err == nil {
			c.outOfFiles.Add(1)
		}
	}
	if err != nil {
		return nil, err
	}
	cf := &cachedFile{path: path, f: f, writable: writable, refs: 1}
	if old, ok := c.files[path]; ok {
		// An in-use read-only handle stays open for its user but leaves
		// the index; it is closed on release.
		c.lru.Remove(old.elem)
		old.elem = nil
	}
	cf.elem = c.lru.PushFront(cf)
	c.files[path] = cf
	return cf, nil
}

func (c *fileCache) openFile(path string, writable bool) (vfs.File, error) {
	if writable {
		return c.fs.OpenReadWrite(path)
	}
	return c.fs.Open(path)
}

// closeIdleLocked closes every cached handle not in use and returns how
// many it closed.
func (c *fileCache) closeIdleLocked() int {
	n := 0
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		if cf := e.Value.(*cachedFile); cf.refs == 0 {
			c.closeLocked(cf)
			n++
		}
		e = prev
	}
	return n
}

// release returns a handle got from get.
func (c *fileCache) release(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf.refs--
	if cf.refs == 0 && cf.elem == nil {
		cf.f.Close() // detached handle (replaced or forgotten while in use)
		return
	}
	c.evictLocked(0)
}

// evictLocked closes idle handles until room more fit under the bound.
func (c *fileCache) evictLocked(room int) {
	for e := c.lru.Back(); e != nil && c.lru.Len()+room > c.max; {
		prev := e.Prev()
		cf := e.Value.(*cachedFile)
		if cf.refs == 0 {
			c.closeLocked(cf)
		}
		e = prev
	}
}

func (c *fileCache) closeLocked(cf *cachedFile) {
	if cf.elem != nil {
		c.lru.Remove(cf.elem)
		cf.elem = nil
	}
	if c.files[cf.path] == cf {
		delete(c.files, cf.path)
	}
	cf.f.Close()
}

// forget closes (or detaches, if in use) the handle of path, before the
// file is removed or renamed.
func (c *fileCache) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf, ok := c.files[path]
	if !ok {
		return
	}
	delete(c.files, path)
	if cf.elem != nil {
		c.lru.Remove(cf.elem)
		cf.elem = nil
	}
	if cf.refs == 0 {
		cf.f.Close()
	}
}

// open is the number of cached handles.
func (c *fileCache) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// closeAll closes every idle handle (Close of the log).
func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cf := range c.files {
		if cf.elem != nil {
			c.lru.Remove(cf.elem)
			cf.elem = nil
		}
		if cf.refs == 0 {
			cf.f.Close()
		}
	}
	c.files = map[string]*cachedFile{}
}
