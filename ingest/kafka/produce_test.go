package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log/logtest"
)

func TestProduceConsumeMem(t *testing.T) {
	ts := startServer(t, logtest.New(t), nil)
	ctx := testCtx(t, 5*time.Second)
	p := newClient(t, ts.addr, kgo.DefaultProduceTopic("t1"), kgo.AllowAutoTopicCreation())
	const n = 1000
	for i := 0; i < n; i++ {
		p.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("v%d", i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts.addr, kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < n {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if got != n {
		t.Fatalf("got %d records, want %d", got, n)
	}
}

func TestProduceConsume(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	p := newClient(t, ts.addr, kgo.DefaultProduceTopic("t1"), kgo.AllowAutoTopicCreation())
	const n = 1000
	for i := 0; i < n; i++ {
		p.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("v%d", i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts.addr, kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < n {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("v%d", got); string(r.Value) != want && r.Partition == 0 {
				t.Fatalf("record %d: %q, want %q", got, r.Value, want)
			}
			got++
		})
	}
	if got != n {
		t.Fatalf("got %d records, want %d", got, n)
	}
	st := ts.Stats()
	if st.ProduceRecords != n || st.ProduceBytes == 0 || st.FetchBytes == 0 || st.Requests[keyProduce] == 0 || st.Requests[keyFetch] == 0 || st.ConnsTotal == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProduceEveryCodec(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 30*time.Second)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			p := newClient(t, ts.addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
				kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(5*time.Millisecond))
			const n = 500
			var rs []*kgo.Record
			for i := 0; i < n; i++ {
				rs = append(rs, &kgo.Record{Key: []byte("k"), Value: []byte(fmt.Sprintf("%s-%04d-padding-padding-padding", name, i)),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{byte(i)}}}})
			}
			if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, ts.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := 0
			for got < n {
				fs := c.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					want := fmt.Sprintf("%s-%04d-padding-padding-padding", name, got)
					if string(r.Value) != want || r.Offset != int64(got) || len(r.Headers) != 1 || r.Headers[0].Value[0] != byte(got) {
						t.Fatalf("record %d: offset %d value %q headers %v", got, r.Offset, r.Value, r.Headers)
					}
					got++
				})
			}
		})
	}
}
