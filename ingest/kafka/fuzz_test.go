package kafka

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
)

// FuzzRequest feeds arbitrary frame bodies to a server connection: whatever
// the bytes, the server must not panic (a panic anywhere kills the fuzz
// process), and it answers or closes the connection.
func FuzzRequest(f *testing.F) {
	// Seeds: every served key at its min and max version, defaults.
	for k := int16(0); k < maxKey; k++ {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		for _, v := range []int16{0, req.MaxVersion()} {
			req.SetVersion(v)
			fr := frame(req, 1)
			f.Add(fr[4:])
		}
	}
	prod := kmsg.NewPtrProduceRequest()
	prod.Version = 9
	prod.Acks = -1
	prod.Topics = []kmsg.ProduceRequestTopic{{Topic: "f", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: (&batchBuilder{}).one("a", "b")}}}}
	f.Add(frame(prod, 2)[4:])
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis = 1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "f", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}
	f.Add(frame(fetch, 3)[4:])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0})

	// Capped partitions keep fuzzed CreatePartitions from exhausting memory.
	ml := logtest.New(f, logtest.MaxPartitions(64))
	if err := ml.CreateTopic("f", log.TopicConfig{Partitions: 2}); err != nil {
		f.Fatal(err)
	}
	s, err := New(Options{Log: ml, AutoCreateTopics: true, Groups: &fakeGroups{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxFrameBytes: 1 << 20,
		// net.Pipe deadlines are timers that keep the pipe alive until
		// they fire: keep them short or off so memory stays flat.
		IdleTimeout: -1, WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })

	f.Fuzz(func(t *testing.T, body []byte) {
		client, server := net.Pipe()
		defer client.Close()
		s.startConn(server)
		msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		msg = append(msg, body...)
		go func() {
			client.SetWriteDeadline(time.Now().Add(time.Second))
			client.Write(msg)
		}()
		// In process an answer comes within microseconds; only long polls
		// and acks=0 produces stay silent, and waiting long for those
		// slows minimization to a crawl.
		client.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var sz [4]byte
		if _, err := io.ReadFull(client, sz[:]); err != nil {
			return // closed, or a long poll still waiting: both fine
		}
		n := binary.BigEndian.Uint32(sz[:])
		if n > 64<<20 {
			t.Fatalf("response frame of %d bytes", n)
		}
		resp := make([]byte, n)
		if _, err := io.ReadFull(client, resp); err != nil {
			return
		}
		if len(body) >= 8 && n >= 4 && binary.BigEndian.Uint32(resp) != binary.BigEndian.Uint32(body[4:]) {
			t.Fatalf("response correlation id % x, request % x", resp[:4], body[4:8])
		}
	})
}
