package access

import (
	"sync"
	"time"
)

// Backoff slows down repeated failed authentications from one source (an
// IP address): the first failure is answered at once (a typo), the n-th
// in a row after min(Base·2^(n-2), Max), as Kafka's
// connection.failed.authentication.delay.ms delays the answer to a
// failure, growing so that guessing passwords from one address gets
// slower and slower. A success from the source, or Reset
// after quiet, starts it over. Safe for concurrent use.
type Backoff struct {
	Base, Max time.Duration
	// Forget drops a source's count after this long without a failure.
	Forget time.Duration

	mu  sync.Mutex
	src map[string]*failures // guarded by mu
}

type failures struct {
	n    int
	last time.Time
}

// DefaultBackoff: 100 ms (Kafka's default delay), doubling up to 5 s,
// forgotten after 10 minutes.
func DefaultBackoff() *Backoff {
	return &Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second, Forget: 10 * time.Minute}
}

// maxSources bounds the table; beyond it the stale entries go.
const maxSources = 4096

// Failed records a failure from source and returns how long to wait
// before answering it.
func (b *Backoff) Failed(source string) time.Duration {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.src == nil {
		b.src = map[string]*failures{}
	}
	f := b.src[source]
	if f == nil || now.Sub(f.last) > b.Forget {
		if len(b.src) >= maxSources {
			for k, v := range b.src {
				if now.Sub(v.last) > b.Forget || len(b.src) >= maxSources {
					delete(b.src, k)
				}
			}
		}
		f = &failures{}
		b.src[source] = f
	}
	f.n++
	f.last = now
	if f.n == 1 {
		return 0
	}
	d := b.Base
	for i := 2; i < f.n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Succeeded forgets source's failures.
func (b *Backoff) Succeeded(source string) {
	b.mu.Lock()
	delete(b.src, source)
	b.mu.Unlock()
}
