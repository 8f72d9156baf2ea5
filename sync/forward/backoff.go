package forward

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with jitter: attempt n waits a random
// duration in [d/2, d] with d = min·2ⁿ capped at max.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	if d > b.max {
		d = b.max
	}
	b.n++
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

func (b *backoff) reset() { b.n = 0 }
