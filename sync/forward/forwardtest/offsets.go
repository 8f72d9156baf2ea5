package forwardtest

import "sort"

// Offsets returns the distinct origin offsets of o that arrived, in
// increasing order.
func (c *Checker) Offsets(o Origin) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	offs := make([]int64, 0, len(c.seen[o]))
	for off := range c.seen[o] {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}
