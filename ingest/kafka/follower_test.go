package kafka

import (
	"context"
	"testing"
	"time"

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
