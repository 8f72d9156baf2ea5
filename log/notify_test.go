package log

import (
	"log/slog"
	"testing"
)

func signalled(w *Waiter) bool {
	select {
	case <-w.C():
		return true
	default:
		return false
	}
}

func TestWatchList(t *testing.T) {
	var wl WatchList
	a, b := NewWaiter(), NewWaiter()
	wl.Add(a, 5, 5)
	wl.Add(b, 7, 5)
	if signalled(a) || signalled(b) || !wl.Active() {
		t.Fatal("registered waiters signalled early")
	}
	wl.Notify(6)
	if !signalled(a) || signalled(b) {
		t.Fatal("Notify(6): want a (after 5) only")
	}
	// Already past: at once, not registered.
	wl.Add(a, 3, 6)
	if !signalled(a) {
		t.Fatal("Add with the value already past did not signal")
	}
	// Reset drops a registration: it never fires, and the next Add or
	// Notify forgets it.
	b.Reset()
	wl.Notify(100)
	if signalled(b) || wl.Active() {
		t.Fatal("a registration dropped by Reset fired or stayed")
	}
	for range 1000 { // one wait after another on a value that never moves
		a.Reset()
		wl.Add(a, 100, 100)
	}
	if n := len(wl.regs); n != 1 {
		t.Fatalf("%d registrations kept for one waiter", n)
	}
	wl.Close()
	if !signalled(a) {
		t.Fatal("Close did not signal")
	}
	wl.Add(b, 1000, 0)
	if !signalled(b) {
		t.Fatal("Add after Close did not signal")
	}
}

// Notify costs no allocation, with or without registrations, and a wait
// cycle (Reset, Add, Notify) allocates nothing once the slice has grown.
func TestWatchListAllocs(t *testing.T) {
	var idle, busy WatchList
	w := NewWaiter()
	v := int64(0)
	if n := testing.AllocsPerRun(1000, func() { v++; idle.Notify(v) }); n != 0 {
		t.Errorf("Notify without registrations: %v allocs", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		w.Reset()
		busy.Add(w, v, v)
		v++
		busy.Notify(v)
	}); n != 0 {
		t.Errorf("wait cycle: %v allocs", n)
	}
}

// BenchmarkAppendWatched: appends to one partition of 1,000 while a Waiter
// watches each of the 999 others (as 999 idle long polls do). The cost of
// an append does not grow with the watchers of other partitions.
func BenchmarkAppendWatched(b *testing.B) {
	for _, watched := range []bool{false, true} {
		name := "unwatched"
		if watched {
			name = "999-watched"
		}
		b.Run(name, func(b *testing.B) {
			l, err := Open(&Options{Dir: b.TempDir(), MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if err := l.CreateTopic("t", TopicConfig{Partitions: 1000, Fsync: FsyncNever}); err != nil {
				b.Fatal(err)
			}
			var ws []*Waiter
			if watched {
				for p := int32(1); p < 1000; p++ {
					w := NewWaiter()
					if err := l.Watch(w, "t", p, 0); err != nil {
						b.Fatal(err)
					}
					ws = append(ws, w)
				}
			}
			data := mkBatch(1, "x")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := l.Append(b.Context(), "t", 0, data); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for _, w := range ws {
				if signalled(w) {
					b.Fatal("a watcher of another partition was signalled")
				}
			}
		})
	}
}
