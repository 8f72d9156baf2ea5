package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSendHonoursContext: with the producer's buffer full and an upstream
// that never answers a produce request, Send returns when its ctx ends
// (done gets the ctx's error, as the forward.Sink contract says) instead
// of waiting for the buffered records' delivery timeout; a Send with a
// finished ctx returns at once; Close is not held up by a blocked Send.
func TestSendHonoursContext(t *testing.T) {
	c := newKfake(t)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release }) // the upstream stalls
		return nil, nil, false
	})
	t.Cleanup(func() { close(release) }) // before the cluster closes
	s, err := kafka.NewMaxBuffered(forward.Upstream{Kind: "kafka", Brokers: c.ListenAddrs(), DeliveryTimeout: time.Minute},
		testLogger(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(part int32, off int64) *forward.Record {
		return &forward.Record{Topic: "t", Value: []byte("v"), Timestamp: time.Now().UnixMilli(), Partition: part, Offset: off}
	}
	first := make(chan error, 1)
	s.Send(context.Background(), rec(0, 0), func(err error) { first <- err }) // fills the buffer

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		s.Send(ctx, rec(0, 1), func(err error) { second <- err })
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a full buffer 10s after its ctx ended")
	}
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("done of the blocked Send: %v, want the ctx's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("done of the blocked Send never called")
	}

	// (Another partition: the failure above blocks partition 0's later
	// records.)
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	third := make(chan error, 1)
	s.Send(done, rec(1, 0), func(err error) { third <- err })
	select {
	case err := <-third:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send with a cancelled ctx: done(%v)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send with a cancelled ctx did not call done")
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked")
	}
	select {
	case err := <-first:
		if err == nil {
			t.Error("a record the upstream never acknowledged reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not fail the unacknowledged record")
	}
}

// TestShutdownStalledUpstream: records in flight to a connected upstream
// that never acknowledges them hold Forwarder.Shutdown only until its ctx
// ends; the cursors stay at what was acknowledged (nothing), so every
// record is sent again after a restart.
func TestShutdownStalledUpstream(t *testing.T) {
	c := newKfake(t)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	t.Cleanup(func() { close(release) })
	lg := logtest.New(t)
	lg.CreateTopic("t", log.TopicConfig{Partitions: 2})
	f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{Name: "r", Topics: []string{"t"}}},
		up: func(u *forward.Upstream) { u.DeliveryTimeout = time.Minute }})
	for end := time.Now().Add(10 * time.Second); f.Routes()[0].State != forward.StateConnected; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("route never connected: %+v", f.Routes()[0])
		}
	}
	forwardtest.Produce(t, lg, "t", 0, 0, 100, 10, 0)
	forwardtest.Produce(t, lg, "t", 1, 0, 100, 10, 0)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rs := f.Routes()[0]
		if rs.State == forward.StateConnected && rs.InFlight == 200 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("records never in flight on a connected route: %+v", rs)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown: %v after %v", err, took)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline's error", err)
	}
	if took > 2*time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", took)
	}
	if curs, _ := lg.Meta().Cursors(forward.CursorPrefix + "r"); len(curs) != 0 && (curs[meta.TopicPartition{Topic: "t", Partition: 0}] != 0 || curs[meta.TopicPartition{Topic: "t", Partition: 1}] != 0) {
		t.Errorf("cursors moved without acknowledgements: %v", curs)
	}
	if st := f.Routes()[0].State; st != forward.StateClosed {
		t.Errorf("route state after Shutdown: %s", st)
	}
}
