package forwardtest

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/runnel/runnel/sync/forward"
)

// Origin locates a record in the local log.
type Origin struct {
	Topic     string
	Partition int32
}

type stream struct {
	up     string // upstream topic + partition (or MQTT topic)
	origin Origin
}

// Checker verifies what arrived upstream: every record at least once and,
// per (upstream partition, origin partition), first occurrences in
// increasing offset order (re-sent duplicates may repeat older offsets).
type Checker struct {
	mu     sync.Mutex // guards everything below
	seen   map[Origin]map[int64]int
	last   map[stream]int64
	errs   []string
	total  int
	bad    int
	dupTot int
}

// NewChecker returns an empty Checker.
func NewChecker() *Checker {
	return &Checker{seen: map[Origin]map[int64]int{}, last: map[stream]int64{}}
}

// OriginOf reads the origin headers; ok is false when any is missing.
func OriginOf(headers func(key string) ([]byte, bool)) (o Origin, off int64, node string, ok bool) {
	t, ok1 := headers(forward.HeaderTopic)
	p, ok2 := headers(forward.HeaderPartition)
	f, ok3 := headers(forward.HeaderOffset)
	n, ok4 := headers(forward.HeaderNode)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return o, 0, "", false
	}
	pi, err1 := strconv.Atoi(string(p))
	oi, err2 := strconv.ParseInt(string(f), 10, 64)
	if err1 != nil || err2 != nil {
		return o, 0, "", false
	}
	return Origin{string(t), int32(pi)}, oi, string(n), true
}

// Add records one upstream arrival. up names the upstream stream
// ("topic/partition" for Kafka, the topic for MQTT).
func (c *Checker) Add(up string, o Origin, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	m := c.seen[o]
	if m == nil {
		m = map[int64]int{}
		c.seen[o] = m
	}
	m[off]++
	if m[off] > 1 {
		c.dupTot++
		return
	}
	s := stream{up, o}
	if l, ok := c.last[s]; ok && off <= l {
		c.bad++
		if len(c.errs) < 10 {
			c.errs = append(c.errs, fmt.Sprintf("%s %s/%d: offset %d first seen after %d", up, o.Topic, o.Partition, off, l))
		}
	}
	c.last[s] = off
}

// Fail records a problem found by the caller (bad header, value).
func (c *Checker) Fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bad++
	if len(c.errs) < 10 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// Complete reports whether every origin partition in want has every
// offset in [0, want[o]).
func (c *Checker) Complete(want map[Origin]int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for o, n := range want {
		if int64(len(c.seen[o])) < n {
			return false
		}
	}
	return true
}

// Counts returns records received, unique records and duplicates.
func (c *Checker) Counts() (total, unique, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.seen {
		unique += len(m)
	}
	return c.total, unique, c.dupTot
}

// Verify fails t unless every offset of want arrived, order held and no
// problem was recorded. It returns the number of duplicates.
func (c *Checker) Verify(t testing.TB, want map[Origin]int64) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
	if c.bad > 0 {
		t.Errorf("%d ordering or content problems", c.bad)
	}
	var keys []Origin
	for o := range want {
		keys = append(keys, o)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].Topic < keys[j].Topic || keys[i].Topic == keys[j].Topic && keys[i].Partition < keys[j].Partition
	})
	for _, o := range keys {
		n := want[o]
		m := c.seen[o]
		missing := 0
		first := int64(-1)
		for off := int64(0); off < n; off++ {
			if m[off] == 0 {
				if first < 0 {
					first = off
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s/%d: %d of %d records missing (first missing offset %d)", o.Topic, o.Partition, missing, n, first)
		}
	}
	return c.dupTot
}
