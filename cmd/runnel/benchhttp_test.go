package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceHTTPvsKafka: the same records (100-byte values, keyed,
// 100 per request) from 4 concurrent clients, produced over HTTP
// (application/json, one POST per 100 records) and over the Kafka protocol
// (franz-go, one synchronous produce of 100 records per call), against one
// runnel serve in the same run. Each waits for every acknowledgement
// (durable: fsync always). Reports records/s of each; compare the ratio.
//
//	go test -run '^$' -bench BenchmarkProduceHTTPvsKafka -benchtime 2000x ./cmd/runnel/
func BenchmarkProduceHTTPvsKafka(b *testing.B) {
	s := startRunnel(b, 4)
	const clients, perReq = 4, 100
	value := strings.Repeat("v", 100)
	var body bytes.Buffer
	body.WriteString(`{"records":[`)
	for i := 0; i < perReq; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"key":"key-%d","value":"%s"}`, i, value)
	}
	body.WriteString(`]}`)
	payload := body.Bytes()

	b.Run("http", func(b *testing.B) {
		url := "http://" + s.HTTPAddr() + "/topics/bench-http"
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		cl := &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
		b.SetBytes(int64(perReq * len(value)))
		b.ResetTimer()
		runClients(b, clients, func() error {
			resp, err := cl.Post(url, "application/json", bytes.NewReader(payload))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		b.ReportMetric(float64(b.N*perReq)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("kafka", func(b *testing.B) {
		recs := make([]*kgo.Record, perReq)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "bench-kafka", Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(value)}
		}
		var cls []*kgo.Client
		for range clients {
			cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.ProducerLinger(0), kgo.AllowAutoTopicCreation())
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			cls = append(cls, cl)
		}
		var next sync.Mutex
		i := 0
		b.SetBytes(int64(perReq * len(value)))
		b.ResetTimer()
		runClients(b, clients, func() error {
			next.Lock()
			cl := cls[i%clients]
			i++
			next.Unlock()
			batch := make([]*kgo.Record, perReq)
			for j, r := range recs {
				c := *r
				batch[j] = &c
			}
			return cl.ProduceSync(context.Background(), batch...).FirstErr()
		})
		b.ReportMetric(float64(b.N*perReq)/b.Elapsed().Seconds(), "records/s")
	})
}

// runClients runs b.N calls of fn spread over n goroutines.
func runClients(b *testing.B, n int, fn func() error) {
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	var once sync.Once
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := fn(); err != nil {
					once.Do(func() { b.Error(err) })
					return
				}
			}
		}()
	}
	wg.Wait()
}
