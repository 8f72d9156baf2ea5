package mqtt

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

type recHandler struct {
	slog.Handler
	got []slog.Record
}

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recHandler) Handle(_ context.Context, r slog.Record) error {
	h.got = append(h.got, r)
	return nil
}

// TestRateHandler: a warning repeated within a second passes once; the
// next one after it says how many were left out; info passes always.
func TestRateHandler(t *testing.T) {
	rec := &recHandler{}
	h := newRateHandler(rec)
	t0 := time.Now()
	ctx := context.Background()
	for i := range 5 {
		h.Handle(ctx, slog.NewRecord(t0.Add(time.Duration(i)*100*time.Millisecond), slog.LevelWarn, "bad packet", 0))
		h.Handle(ctx, slog.NewRecord(t0, slog.LevelInfo, "hello", 0))
	}
	h.Handle(ctx, slog.NewRecord(t0.Add(1500*time.Millisecond), slog.LevelWarn, "bad packet", 0))
	var warns []slog.Record
	for _, r := range rec.got {
		if r.Level == slog.LevelWarn {
			warns = append(warns, r)
		}
	}
	if len(rec.got)-len(warns) != 5 || len(warns) != 2 {
		t.Fatalf("%d info and %d warnings passed, want 5 and 2", len(rec.got)-len(warns), len(warns))
	}
	var suppressed int64
	warns[1].Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			suppressed = a.Value.Int64()
		}
		return true
	})
	if suppressed != 4 {
		t.Fatalf("suppressed = %d, want 4", suppressed)
	}
}
