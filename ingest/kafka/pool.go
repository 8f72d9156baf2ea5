package kafka

import (
	"math/bits"
	"sync"
)

// Request frames are read into power-of-two buffers from size-classed pools
// (1 KiB .. 1 MiB); larger frames are allocated and left to the GC, so a
// burst of large requests is not kept in pools (memBudget gives it back to
// the OS).
const (
	minPoolShift = 10
	maxPoolShift = 20
)

var framePools [maxPoolShift + 1]sync.Pool

func poolClass(n int) int {
	if n <= 1<<minPoolShift {
		return minPoolShift
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a buffer of length n.
func getBuf(n int) []byte {
	c := poolClass(n)
	if c > maxPoolShift {
		return make([]byte, n)
	}
	if v := framePools[c].Get(); v != nil {
		b := *(v.(*[]byte))
		return b[:n]
	}
	return make([]byte, n, 1<<c)
}

// putBuf recycles a buffer from getBuf. The caller must hold no reference.
func putBuf(b []byte) {
	c := cap(b)
	if c < 1<<minPoolShift || c > 1<<maxPoolShift || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	framePools[bits.Len(uint(c))-1].Put(&b)
}
