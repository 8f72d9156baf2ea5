package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		b := histBucket(v)
		if b < prev || b > prev+1 {
			t.Fatalf("bucket(%d) = %d after %d: not monotonic and dense", v, b, prev)
		}
		prev = b
		mid := histValue(b)
		if v >= histLinear {
			if err := float64(int64(mid)-int64(v)) / float64(v); err > 0.035 || err < -0.035 {
				t.Fatalf("value %d in bucket %d with midpoint %d: %.3f relative error", v, b, mid, err)
			}
		} else if mid != v {
			t.Fatalf("value %d: exact bucket gives %d", v, mid)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h latencyHist
	var all []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64()*2000) * time.Microsecond
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.04 || diff < -0.04 {
			t.Errorf("q%.3f = %v, exact %v", q, got, exact)
		}
	}
	if h.maxLatency() != all[len(all)-1].Truncate(time.Microsecond) {
		t.Errorf("max %v, want %v", h.maxLatency(), all[len(all)-1])
	}
	if h.count() != 100000 {
		t.Errorf("count %d", h.count())
	}
}
