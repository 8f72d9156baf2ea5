package log_test

import (
	"log/slog"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest/conformance"
)

// TestConformance runs the log.Log contract suite against the log on disk,
// with shared segment files (the default) and with per-partition files
// and the journal.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name     string
		noShared bool
	}{{"shared", false}, {"files", true}} {
		t.Run(c.name, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) log.Log {
				l, err := log.Open(&log.Options{Dir: t.TempDir(), MinFreeBytes: -1, NoSharedSegments: c.noShared,
					Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				return l
			})
		})
	}
}
