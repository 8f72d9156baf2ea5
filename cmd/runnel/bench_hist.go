package main

// A lock-free log-linear latency histogram for the load generator: values in
// microseconds, exact below 64 µs, then 32 buckets per power of two (about
// 3% relative error), safe to record from any goroutine.

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	histLinear = 64 // values below this are exact
	histSub    = 32 // buckets per power of two above
	histExps   = 58 // up to 2^64 µs
	histSize   = histLinear + histExps*histSub
)

// latencyHist counts latencies; the zero value is ready to use.
type latencyHist struct {
	counts [histSize]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64 // µs
	sum    atomic.Uint64 // µs
}

// histBucket returns the bucket of v µs.
func histBucket(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - 6 // v>>shift is in [32, 64)
	i := histLinear + (shift-1)*histSub + int(v>>shift) - histSub
	return min(i, histSize-1)
}

// histValue returns a representative value (bucket midpoint) of bucket i.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	top := uint64((i-histLinear)%histSub + histSub)
	lo := top << shift
	return lo + (uint64(1)<<shift)/2
}

// record adds one latency.
func (h *latencyHist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := uint64(d / time.Microsecond)
	h.counts[histBucket(us)].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// count returns how many latencies were recorded.
func (h *latencyHist) count() uint64 { return h.n.Load() }

// quantile returns the q-quantile (0 < q <= 1); 0 when empty.
func (h *latencyHist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := min(histValue(i), h.max.Load())
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// maxLatency returns the largest recorded latency.
func (h *latencyHist) maxLatency() time.Duration {
	return time.Duration(h.max.Load()) * time.Microsecond
}

// mean returns the average latency.
func (h *latencyHist) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load()/n) * time.Microsecond
}
