package kafka

import (
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
)

type throttleHook struct{ n atomic.Int64 }

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		h.n.Add(1)
	}
}

// TestProduceQuota: a user with a producer byte rate writing more than a
// second's worth is answered with throttle times and slowed to about its
// rate; a user without a quota producing at the same time is not
// throttled. Nothing produced is lost either way.
func TestProduceQuota(t *testing.T) {
	st, err := users.NewStore(nil, map[string]string{"device": "d", "other": "o"})
	if err != nil {
		t.Fatal(err)
	}
	const rate = 64 << 10
	ts := startServer(t, openLog(t, ""), func(o *Options) {
		o.Users = st
		o.Quotas = access.NewQuotas(func(u string) int64 {
			if u == "device" {
				return rate
			}
			return 0
		})
	})
	ctx := testCtx(t, 60*time.Second)
	client := func(user, pass string, h *throttleHook) *kgo.Client {
		return newClient(t, ts.addr, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()), kgo.WithHooks(h),
			kgo.DefaultProduceTopic("q-"+user), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	}
	var dh, oh throttleHook
	dev, oth := client("device", "d", &dh), client("other", "o", &oh)
	val := make([]byte, 16<<10) // random: compression leaves it as large
	rand.Read(val)
	const n = 16 // 256 KiB: four seconds' worth at 64 KiB/s, one of them burst
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for range n {
			if err := oth.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n {
		if err := dev.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dh.n.Load() == 0 {
		t.Error("the user over its quota saw no throttle time")
	}
	if oh.n.Load() != 0 {
		t.Errorf("the user without a quota was throttled %d times", oh.n.Load())
	}
	// 256 KiB at 64 KiB/s with one second of burst: at least ~2.5 s.
	if took < 2*time.Second {
		t.Errorf("256 KiB at a 64 KiB/s quota took %v", took)
	}
	if ts.Stats().Throttled == 0 {
		t.Error("Stats().Throttled = 0")
	}
}
