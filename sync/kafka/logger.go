package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger sends kgo's logs to slog at Debug (the forwarder reports
// problems per route) and remembers the last message that carried an
// error, so a record that times out can say why (bad credentials, TLS
// failure, connection refused, unknown topic).
type kgoLogger struct {
	l *slog.Logger

	mu     sync.Mutex // guards last, lastAt
	last   string
	lastAt time.Time
}

func (k *kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelInfo
}

func (k *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	k.l.Debug("kafka: "+msg, keyvals...)
	if level > kgo.LogLevelInfo || level == kgo.LogLevelNone {
		return
	}
	s := ""
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "err" && keyvals[i+1] != nil {
			s = fmt.Sprintf("%s: %v", msg, keyvals[i+1])
		}
	}
	if s == "" {
		return
	}
	k.mu.Lock()
	k.last, k.lastAt = s, time.Now()
	k.mu.Unlock()
}

// recent returns the last warning if it happened within d.
func (k *kgoLogger) recent(d time.Duration) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.lastAt) > d {
		return ""
	}
	return k.last
}
