package logtest_test

import (
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/log/logtest/conformance"
)

// TestConformance runs the log.Log contract suite against Mem, with appends
// completing inline and through the committer goroutine.
func TestConformance(t *testing.T) {
	t.Run("inline", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) log.Log { return logtest.New(t) })
	})
	t.Run("async", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) log.Log { return logtest.New(t, logtest.AsyncCommit()) })
	})
}
