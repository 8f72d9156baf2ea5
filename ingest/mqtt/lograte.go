package mqtt

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateHandler passes at most one warning or error a second per message
// to its handler (mochi logs one line per bad packet or full offline
// queue: a flood of hostile connections made megabytes of log a second).
// The first record after a quiet second carries how many were dropped
// since ("suppressed"). Info and debug records pass untouched.
type rateHandler struct {
	slog.Handler
	st *rateState
}

type rateState struct {
	mu   sync.Mutex
	last map[string]time.Time // guarded by mu: when a message last passed
	held map[string]int       // guarded by mu: dropped since
}

func newRateHandler(h slog.Handler) *rateHandler {
	return &rateHandler{Handler: h, st: &rateState{last: map[string]time.Time{}, held: map[string]int{}}}
}

func (h *rateHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	h.st.mu.Lock()
	if t, ok := h.st.last[r.Message]; ok && r.Time.Sub(t) < time.Second {
		h.st.held[r.Message]++
		h.st.mu.Unlock()
		return nil
	}
	if len(h.st.last) > 1000 {
		clear(h.st.last) // messages are few and fixed; this only bounds the map
	}
	h.st.last[r.Message] = r.Time
	n := h.st.held[r.Message]
	delete(h.st.held, r.Message)
	h.st.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *rateHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateHandler{Handler: h.Handler.WithAttrs(as), st: h.st}
}

func (h *rateHandler) WithGroup(name string) slog.Handler {
	return &rateHandler{Handler: h.Handler.WithGroup(name), st: h.st}
}
