package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// siteCluster is a one-peer site for follower fetches: the follower log is
// the node's log itself.
type siteCluster struct{ follower log.Log }

func (c siteCluster) Replicas(string, int32) ([]int32, []int32, []int32, bool) {
	return []int32{1, 2}, []int32{1, 2}, []int32{}, true
}
func (c siteCluster) Brokers() map[int32]string                   { return map[int32]string{} }
func (c siteCluster) Leader(string, int32) (bool, int32, string)  { return true, 0, "" }
func (c siteCluster) FollowerFetched(int32, string, int32, int64) {}
func (c siteCluster) FollowerLog() log.Log                        { return c.follower }

// heldEnd is the view consumers see on a replicating node for a topic with
// min.insync.replicas > 1: its end moves only once a copy holds more, which
// only the copy's next fetch can say, so its Watch never fires here.
type heldEnd struct{ log.Log }

func (heldEnd) Watch(*log.Waiter, string, int32, int64) error { return nil }

// A follower's long poll wakes when the log it reads (the durable end)
// moves, not when the acknowledged end consumers see moves: that end waits
// for this very follower's next fetch.
func TestFollowerFetchWakesOnTheLogItReads(t *testing.T) {
	real := openLog(t, "")
	if err := real.CreateTopic("f", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, heldEnd{real}, func(o *Options) { o.Cluster = siteCluster{real} })
	r := dialRaw(t, ts.addr)
	req := fetchReq("f", []int32{0}, 0, 1, 20000, 1<<20, 1<<20)
	req.ReplicaID = 2
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		r.write(frame(req, 1))
		_, err := r.readFrame()
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := real.Append(context.Background(), "f", 0, (&batchBuilder{}).one("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the follower's fetch (20 s long poll) still waits %v after an append to the log it reads", time.Since(began))
	}
}

// emptyView is a consumer view that shows nothing yet (a topic with
// min.insync.replicas > 1 no copy acknowledged).
type emptyView struct{ log.Log }

func (v emptyView) Offsets(topic string, partition int32) (int64, int64, error) {
	start, _, err := v.Log.Offsets(topic, partition)
	return start, start, err
}

func (v emptyView) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	if offset > 0 {
		return nil, log.ErrOffsetOutOfRange
	}
	return nil, nil
}

// countingCluster records follower fetches.
type countingCluster struct {
	siteCluster
	fetched *int
}

func (c countingCluster) FollowerFetched(int32, string, int32, int64) { *c.fetched++ }

// A Fetch with Kafka's debugging replica id (-2) reads what a follower
// reads, past the end consumers see, and is no follower's progress.
func TestDebugReplicaFetch(t *testing.T) {
	real := openLog(t, "")
	if err := real.CreateTopic("d", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := real.Append(context.Background(), "d", 0, (&batchBuilder{}).one("x")); err != nil {
		t.Fatal(err)
	}
	fetched := 0
	ts := startServer(t, emptyView{real}, func(o *Options) { o.Cluster = countingCluster{siteCluster{real}, &fetched} })
	r := dialRaw(t, ts.addr)
	for i, c := range []struct {
		replica int32
		records bool
	}{{-1, false}, {DebugReplicaID, true}} {
		req := fetchReq("d", []int32{0}, 0, 0, 0, 1<<20, 1<<20)
		req.ReplicaID = c.replica
		resp := r.roundTrip(req, int32(i+1)).(*kmsg.FetchResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || (len(p.RecordBatches) > 0) != c.records || c.records && p.HighWatermark != 1 {
			t.Errorf("replica id %d: error %d, %d bytes, high watermark %d; want records %v", c.replica, p.ErrorCode, len(p.RecordBatches), p.HighWatermark, c.records)
		}
	}
	if fetched != 0 {
		t.Errorf("%d follower fetches recorded, want 0", fetched)
	}
}
