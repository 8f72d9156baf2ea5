package kafka_test

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// TestSoak: records ingested into a real log while they are forwarded to a
// real Kafka that is killed and restarted again and again. Checks: nothing
// lost, order per partition, heap stays flat. The full run (RUNNEL_SOAK=1,
// `make soak`): 1,000,000 records, the upstream killed every 1-30 s for
// 1-30 s. The bounded run (RUNNEL_SOAK=bounded, `make soak-short`, part of
// `make test`): 150,000 records, killed every 1-5 s for 1-5 s, about a
// minute. RUNNEL_SOAK_RECORDS overrides the count.
func TestSoak(t *testing.T) {
	var total, flapMax int
	switch os.Getenv("RUNNEL_SOAK") {
	case "1":
		total, flapMax = 1_000_000, 30
	case "bounded":
		total, flapMax = 150_000, 5
	default:
		t.Skip("soak test: set RUNNEL_SOAK=1 (make soak) or RUNNEL_SOAK=bounded (make soak-short)")
	}
	if v, err := strconv.Atoi(os.Getenv("RUNNEL_SOAK_RECORDS")); err == nil && v > 0 {
		total = v
	}
	const parts = 4
	per := total / parts
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: parts})
	brokers := []string{b.Addr()}
	b.CreateTopic("soak", parts)
	lg, err := log.Open(&log.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() }) // after the forwarder's Close
	if err := lg.CreateTopic("soak", log.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	col := collect(t, brokers, "soak")
	f := startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{Name: "soak", Topics: []string{"soak"}}},
		up: func(u *forward.Upstream) { u.DeliveryTimeout = 5 * time.Second }})

	// Ingest at ~5,000 records/s (1,000,000 take ~3.5 min).
	var wg sync.WaitGroup
	for p := int32(0); p < parts; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i += 500 {
				forwardtest.Produce(t, lg, "soak", p, i, min(500, per-i), 500, 0)
				time.Sleep(400 * time.Millisecond)
			}
		}()
	}
	// Flap the upstream until everything is acknowledged.
	stop := make(chan struct{})
	flaps := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+rand.IntN(flapMax)) * time.Second):
			}
			b.Kill()
			flaps++
			select {
			case <-stop:
			case <-time.After(time.Duration(1+rand.IntN(flapMax)) * time.Second):
			}
			if err := b.RestartErr(); err != nil {
				t.Errorf("restart: %v", err)
				return
			}
		}
	}()
	var maxHeap uint64
	var heaps []uint64
	deadline := time.Now().Add(30 * time.Minute)
	for f.Stats().AckedRecords < uint64(total) || f.Stats().LagRecords > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("soak did not finish: %s", routesString(f))
		}
		time.Sleep(time.Second)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapInuse)
		heaps = append(heaps, ms.HeapInuse)
	}
	close(stop)
	wg.Wait()
	if !b.Running() {
		b.Restart()
	}
	want := map[forwardtest.Origin]int64{}
	for p := int32(0); p < parts; p++ {
		want[forwardtest.Origin{Topic: "soak", Partition: p}] = int64(per)
	}
	col.waitComplete(t, want, 2*time.Minute, f)
	dups := col.ch.Verify(t, want)
	if flaps == 0 {
		t.Errorf("the upstream was never killed during the run")
	}
	t.Logf("%d records, %d flaps, %d duplicates, max heap in use %d MiB (samples %d); %s",
		total, flaps, dups, maxHeap>>20, len(heaps), routesString(f))
	if maxHeap > 512<<20 {
		t.Errorf("heap grew to %d MiB", maxHeap>>20)
	}
}
