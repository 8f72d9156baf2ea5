package kafka

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShutdownSlowClient: a client that sends fetches and never reads the
// responses (the server's writes to it block) holds Shutdown only until
// its ctx ends; then its connection is closed and Shutdown says so.
func TestShutdownSlowClient(t *testing.T) {
	l := openLog(t, "")
	if err := l.CreateTopic("big", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var bb batchBuilder
	val := strings.Repeat("x", 256<<10)
	for i := 0; i < 16; i++ {
		if _, err := l.Append(context.Background(), "big", 0, bb.one(val, val)); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, l, nil)
	r := dialRaw(t, ts.addr)
	if sc, err := r.nc.(*net.TCPConn).SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}
	for i := int32(0); i < 32; i++ {
		f := kmsg.NewPtrFetchRequest()
		f.Version = 4
		f.MaxBytes = 8 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "big"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 8 << 20
		ft.Partitions = append(ft.Partitions, fp)
		f.Topics = append(f.Topics, ft)
		r.write(frame(f, i))
	}
	time.Sleep(200 * time.Millisecond) // the server is writing the responses
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ts.Shutdown(ctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline's error", err)
	}
}
