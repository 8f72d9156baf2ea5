package log

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/vfs/errorfs"
)

// TestClosedLoopWritersShareCommits: writers that each wait for their ack
// share commits (group commit: one sync for every writer that appended
// during the previous one), and none is held back for the others: with 64
// writers and slow syncs (2ms, as on a slow card, so that the writers' own
// time is small beside them) a commit holds about half of them (the
// writers settle into two groups whose commits alternate), never one
// sync per writer, and CommitsDelayed stays 0.
func TestClosedLoopWritersShareCommits(t *testing.T) {
	const writers, rounds = 64, 20
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			slow := errorfs.InjectorFunc(func(op errorfs.Op) error {
				switch op.Kind {
				case errorfs.OpSync:
					time.Sleep(2 * time.Millisecond)
				case errorfs.OpWriteAt:
					// A write costs the writer CPU time, as a system call
					// does (a sleep would let every writer run at once).
					for t0 := time.Now(); time.Since(t0) < 5*time.Microsecond; {
					}
				}
				return nil
			})
			l := testOpen(t, t.TempDir(), func(o *Options) {
				o.FS = errorfs.Wrap(errorfs.NewMem(1), slow)
				o.NoSharedSegments = !shared
			})
			defer l.Close()
			if err := l.CreateTopic("w", TopicConfig{Partitions: writers}); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			data := mkBatch(1, "v")
			run := func(rounds int) {
				var wg sync.WaitGroup
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range rounds {
							if _, err := l.Append(ctx, "w", int32(w), append([]byte(nil), data...)); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			run(1) // segments created, directories synced
			st0 := l.Stats()
			commits := func() uint64 {
				st := l.Stats()
				return st.JournalCommits + st.SharedCommits
			}
			// The first and last rounds may split (writers start and stop
			// at different times), and a loaded box may delay a writer
			// past a sync now and then: three tries.
			var got []string
			for range 3 {
				c0 := commits()
				run(rounds)
				n := commits() - c0
				perCommit := float64(writers*rounds) / float64(n)
				if perCommit >= writers/3 {
					break
				}
				got = append(got, fmt.Sprintf("%.1f", perCommit))
			}
			if len(got) == 3 {
				t.Errorf("%d appends by %d writers: %s per commit in three tries, want at least %d", writers*rounds, writers, got, writers/3)
			}
			if st := l.Stats(); st.CommitsDelayed != st0.CommitsDelayed {
				t.Errorf("%d commits held back while every writer waited for its ack", st.CommitsDelayed-st0.CommitsDelayed)
			}
		})
	}
}
