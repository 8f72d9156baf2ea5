// Package forwardtest holds test helpers for the forwarder and its sinks:
// record fixtures (Produce, Value), a delivery Checker and a FakeSink. The
// in-memory log they run against is log/logtest.
package forwardtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// Produce appends n records to topic/partition in batches of per records,
// with key "k<i%keys>" (nil when keys == 0), value "<topic>/<partition>/<i>"
// and one header; i counts from first.
func Produce(t testing.TB, l log.Log, topic string, partition int32, first, n, per, keys int) {
	t.Helper()
	var b batch.Builder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		if _, err := l.Append(context.Background(), topic, partition, b.Bytes()); err != nil {
			t.Fatalf("append: %v", err)
		}
		b.Reset()
	}
	for i := first; i < first+n; i++ {
		var key []byte
		if keys > 0 {
			key = fmt.Appendf(nil, "k%d", i%keys)
		}
		b.Add(1700000000000+int64(i), key, Value(topic, partition, i), []batch.RecordHeader{{Key: "h", Value: []byte("v")}})
		if b.Len() >= per {
			flush()
		}
	}
	flush()
}

// Value is the value Produce writes for record i.
func Value(topic string, partition int32, i int) []byte {
	return fmt.Appendf(nil, "%s/%d/%d", topic, partition, i)
}
