package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPubacksWaitOnlyForTheirSync: mosquitto_pub clients (QoS 1, fsync
// always, the real log) that each wait for their PUBACKs get them from
// the commit that makes their messages durable, with no commit held back
// for a timer or a gather window (log Stats().CommitsDelayed stays 0):
// one client with mosquitto_pub's default in-flight window (20), and ten
// clients that each publish one message at a time. Nothing else writes to
// the log, so nothing is arriving that a held commit could gather.
func TestPubacksWaitOnlyForTheirSync(t *testing.T) {
	needTool(t, "mosquitto_pub")
	for _, c := range []struct {
		clients, window, messages int
	}{{1, 20, 2000}, {10, 1, 200}} {
		t.Run(fmt.Sprintf("clients=%d,window=%d", c.clients, c.window), func(t *testing.T) {
			l := newRealLog(t)
			b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			input := strings.Repeat(strings.Repeat("x", 100)+"\n", c.messages)
			st0 := l.Stats()
			var wg sync.WaitGroup
			for i := range c.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := mosq(t, ctx, input, "mosquitto_pub", "-h", "127.0.0.1", "-p", port(addr),
						"-q", "1", "-l", "-M", fmt.Sprint(c.window), "-t", fmt.Sprintf("dev/%d", i), "-i", fmt.Sprintf("dev-%d", i))
					if err != nil {
						t.Errorf("mosquitto_pub: %v: %s", err, out)
					}
				}()
			}
			wg.Wait()
			total := c.clients * c.messages
			// mosquitto_pub exits once every PUBACK is in.
			if got := b.Stats().Acked; got != uint64(total) {
				t.Fatalf("%d PUBACKs, want %d", got, total)
			}
			if n := len(readAll(t, l, DefaultTopic, 0)); n != total {
				t.Fatalf("%d records in the log, want %d", n, total)
			}
			st := l.Stats()
			if d := st.CommitsDelayed - st0.CommitsDelayed; d != 0 {
				t.Errorf("%d commits held back (%v in all) while every writer waited for its ack", d, time.Duration(st.CommitDelayNanos-st0.CommitDelayNanos))
			}
			t.Logf("%d messages, %d fsyncs", total, st.Fsyncs-st0.Fsyncs)
		})
	}
}
