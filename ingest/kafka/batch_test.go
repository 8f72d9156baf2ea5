package kafka

import "github.com/runnel/runnel/log/batch"

// batchBuilder makes small valid record batches for raw requests.
type batchBuilder struct {
	pid int64 // 0 = not idempotent
	seq int32
	ts  int64
}

func (bb *batchBuilder) one(values ...string) []byte {
	var b batch.Builder
	if bb.pid > 0 {
		b.SetProducer(bb.pid, 0, bb.seq)
		bb.seq += int32(len(values))
	}
	ts := bb.ts
	if ts == 0 {
		ts = 1_700_000_000_000
	}
	for _, v := range values {
		b.Add(ts, nil, []byte(v), nil)
	}
	return b.Bytes()
}
