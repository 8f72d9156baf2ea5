package kafka

import (
	"testing"
	"time"
)

// TestMemBudget: requests wait for room in arrival order, one larger than
// the whole budget goes through alone, and a canceled wait takes nothing.
func TestMemBudget(t *testing.T) {
	b := newMemBudget(100)
	never := make(chan struct{})
	if !b.acquire(60, never, never) {
		t.Fatal("first acquire")
	}
	got := make(chan int64, 4)
	wait := func(n int64, cancel chan struct{}) {
		go func() {
			if b.acquire(n, cancel, never) {
				got <- n
			} else {
				got <- -n
			}
		}()
		time.Sleep(20 * time.Millisecond) // queued in this order
	}
	wait(50, never) // does not fit beside 60
	wait(10, never) // would fit, but waits behind 50 (FIFO)
	cancel := make(chan struct{})
	wait(200, cancel) // larger than the budget
	select {
	case n := <-got:
		t.Fatalf("%d granted while 60 of 100 are held", n)
	default:
	}
	b.release(60)
	if a, c := <-got, <-got; a+c != 60 || a*c != 500 {
		t.Fatalf("granted %d and %d, want 50 and 10", a, c)
	}
	close(cancel)
	if n := <-got; n != -200 {
		t.Fatalf("canceled wait: %d", n)
	}
	b.release(50)
	b.release(10)
	if b.held.Load() != 0 {
		t.Fatalf("held %d after every release", b.held.Load())
	}
	// Alone, a frame larger than the budget goes through.
	if !b.acquire(200, never, never) {
		t.Fatal("oversized acquire on an idle budget")
	}
	b.release(200)
	if b.waits.Load() != 3 {
		t.Fatalf("waits = %d, want 3", b.waits.Load())
	}
}
