package mqtt

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

// benchPublish pipelines b.N publishes of 100-byte payloads from one paho
// (MQTT 5) client into a broker backed by the real log (fsync always) and
// reports msg/s. QoS 1 counts a message when its PUBACK (sent only after
// the fsync) arrives; QoS 0 when the record is durable in the log.
func benchPublish(b *testing.B, qos byte) {
	vfstest.RequireRealDisk(b, os.TempDir())
	l := newRealLog(b)
	br, addr := startBroker(b, Options{Log: l, AllowAnonymous: true})
	c := pahoConnect(b, addr, "bench", nil)
	payload := bytes.Repeat([]byte("x"), 100)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const workers = 512 // QoS 1 messages in flight (server Receive Maximum is 1024)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if qos == 0 {
		for i := 0; i < b.N; i++ {
			if _, err := c.Publish(ctx, &paho.Publish{Topic: "bench/t", QoS: 0, Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		for br.Stats().Ingested < uint64(b.N) {
			if ctx.Err() != nil {
				b.Fatal("timed out waiting for QoS 0 records")
			}
			time.Sleep(200 * time.Microsecond)
		}
	} else {
		var wg sync.WaitGroup
		jobs := make(chan struct{}, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					if _, err := c.Publish(ctx, &paho.Publish{Topic: "bench/t", QoS: qos, Payload: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		for i := 0; i < b.N; i++ {
			jobs <- struct{}{}
		}
		close(jobs)
		wg.Wait()
	}
	el := time.Since(start)
	b.StopTimer()
	st := br.Stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
	if st.Batches > 0 {
		b.ReportMetric(float64(b.N)/float64(st.Batches), "msg/batch")
	}
	if ls := l.Stats(); ls.Fsyncs > 0 {
		b.ReportMetric(float64(b.N)/float64(ls.Fsyncs), "msg/fsync")
		b.ReportMetric(float64(ls.FsyncNanos)/float64(ls.Fsyncs)/1e6, "ms/fsync")
	}
}

func BenchmarkPublishQoS1(b *testing.B) { benchPublish(b, 1) }
func BenchmarkPublishQoS0(b *testing.B) { benchPublish(b, 0) }

// benchMosquittoPub pipes b.N 100-byte lines through `mosquitto_pub -l`
// (the reference load) into the broker and reports msg/s.
func benchMosquittoPub(b *testing.B, qos string) {
	needTool(b, "mosquitto_pub")
	l := newRealLog(b)
	br, addr := startBroker(b, Options{Log: l, AllowAnonymous: true})
	line := string(bytes.Repeat([]byte("y"), 100)) + "\n"
	input := strings.Repeat(line, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(100)
	b.ResetTimer()
	start := time.Now()
	out, err := mosq(b, ctx, input, "mosquitto_pub", "-h", "127.0.0.1", "-p", port(addr), "-q", qos, "-t", "bench/m", "-l", "-M", mosqInflight)
	if err != nil {
		b.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	for br.Stats().Ingested < uint64(b.N) {
		if ctx.Err() != nil {
			b.Fatal("timed out")
		}
		time.Sleep(200 * time.Microsecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
	if ls := l.Stats(); ls.Fsyncs > 0 {
		b.ReportMetric(float64(b.N)/float64(ls.Fsyncs), "msg/fsync")
	}
}

func BenchmarkMosquittoPubQoS1(b *testing.B) { benchMosquittoPub(b, "1") }
func BenchmarkMosquittoPubQoS0(b *testing.B) { benchMosquittoPub(b, "0") }

// mosqInflight is mosquitto_pub's -M (its default is 20, which caps a
// broker that acks after an fsync at 20 messages per fsync).
var mosqInflight = func() string {
	if v := os.Getenv("RUNNEL_BENCH_MOSQ_INFLIGHT"); v != "" {
		return v
	}
	return "1000"
}()
