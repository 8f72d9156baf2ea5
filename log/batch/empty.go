package batch

import (
	"encoding/binary"
	"math"
)

// Empty returns a batch with no records covering offsets [base, last]
// (lastOffsetDelta last-base, which must fit an int32) in leader epoch
// epoch, timestamps ts, no producer: what compaction leaves where
// records were removed (Kafka's compacted-empty batch; every client
// skips it and continues at last+1).
func Empty(base, last int64, epoch int32, ts int64) []byte {
	b := make([]byte, HeaderSize)
	be := binary.BigEndian
	be.PutUint64(b[OffBaseOffset:], uint64(base))
	be.PutUint32(b[OffBatchLength:], uint32(HeaderSize-LogOverhead))
	be.PutUint32(b[OffLeaderEpoch:], uint32(epoch))
	b[OffMagic] = 2
	be.PutUint32(b[OffLastOffsetDelta:], uint32(last-base))
	be.PutUint64(b[OffBaseTimestamp:], uint64(ts))
	be.PutUint64(b[OffMaxTimestamp:], uint64(ts))
	be.PutUint64(b[OffProducerID:], math.MaxUint64) // -1
	be.PutUint16(b[OffProducerEpoch:], math.MaxUint16)
	be.PutUint32(b[OffBaseSequence:], math.MaxUint32)
	be.PutUint32(b[OffCRC:], Checksum(b))
	return b
}
