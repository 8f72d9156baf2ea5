package kafka

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/sync/forward"
)

// NewMaxBuffered is New with kgo's MaxBufferedRecords at n.
func NewMaxBuffered(u forward.Upstream, logger *slog.Logger, n int) (*Sink, error) {
	return newSink(u, logger, int64(n), kgo.MaxBufferedRecords(n))
}
