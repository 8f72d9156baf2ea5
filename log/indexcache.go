package log

import (
	"container/list"
	"sync"
)

// indexCache bounds the memory held by the sparse indexes of sealed
// segments: an LRU of segments whose index is loaded. An evicted index is
// reloaded from its index files (or rebuilt from the .log) on next use.
// Active segments are never in it (their index lives only in memory).
type indexCache struct {
	max int

	mu    sync.Mutex // guards lru, elems
	lru   *list.List // of *segment, front = most recently used
	elems map[*segment]*list.Element
}

func newIndexCache(max int) *indexCache {
	return &indexCache{max: max, lru: list.New(), elems: map[*segment]*list.Element{}}
}

// touch marks seg's index as used, adding it when absent, and unloads the
// least recently used ones over the bound. Call without seg.mu held.
func (c *indexCache) touch(seg *segment) {
	if seg.virt != nil {
		return // virtual segments keep their index (no index files to reload from)
	}
	c.mu.Lock()
	if e, ok := c.elems[seg]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return
	}
	c.elems[seg] = c.lru.PushFront(seg)
	var victims []*segment
	for c.lru.Len() > c.max {
		e := c.lru.Back()
		v := e.Value.(*segment)
		c.lru.Remove(e)
		delete(c.elems, v)
		victims = append(victims, v)
	}
	c.mu.Unlock()
	for _, v := range victims {
		v.mu.Lock()
		v.index, v.indexed, v.lastIndexed = nil, false, -1
		v.mu.Unlock()
	}
}

// forget drops seg (deleted).
func (c *indexCache) forget(seg *segment) {
	c.mu.Lock()
	if e, ok := c.elems[seg]; ok {
		c.lru.Remove(e)
		delete(c.elems, seg)
	}
	c.mu.Unlock()
}

// loaded is the number of sealed-segment indexes in memory.
func (c *indexCache) loaded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
