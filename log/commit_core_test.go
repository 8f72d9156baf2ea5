package log

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// TestClosedLoopWritersShareCommits: writers that each wait for their ack
// are all acknowledged by one commit, and the next commit waits for all of
// them to append again (awaitAcked) instead of starting with the first
// few and leaving the rest to the one after (before awaitAcked: 44-47
// appends per commit here with the journal format). Syncs are slowed down
// (2ms, as on a slow card) so that the writers' own time is small beside
// them.
func TestClosedLoopWritersShareCommits(t *testing.T) {
	if raceEnabled {
		// The wait is bounded (awaitAckedWithin): 64 writers under the
		// race detector do not come back within it.
		t.Skip("timing: the race detector slows the writers down past the wait")
	}
	reexec.SkipIfEmulated(t, "the writers do not come back within the wait")
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
			commits := func() uint64 {
				st := l.Stats()
				return st.JournalCommits + st.SharedCommits
			}
			// The first and last rounds may split (writers start and stop
			// at different times), and a loaded box may delay a writer
			// past the wait now and then: most commits must hold all. A
			// box busy with other tests gets three tries (without the
			// wait every try gives 44-47).
			var got []string
			for range 3 {
				c0 := commits()
				run(rounds)
				n := commits() - c0
				perCommit := float64(writers*rounds) / float64(n)
				if perCommit >= 0.8*writers {
					return
				}
				got = append(got, fmt.Sprintf("%.1f", perCommit))
			}
			t.Errorf("%d appends by %d writers: %s per commit in three tries, want at least %.1f", writers*rounds, writers, got, 0.8*writers)
		})
	}
}
