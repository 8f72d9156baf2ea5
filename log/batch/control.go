package batch

import "encoding/binary"

// Attribute bits of a RecordBatch v2 (besides the codec, bits 0-2).
// Never change: they are Kafka's.
const (
	AttrLogAppendTime = 0x08
	AttrTransactional = 0x10
	AttrControl       = 0x20
)

// Marker builds a transaction marker: a control batch (attributes
// transactional and control) of producer pid at epoch, without a
// sequence, holding one record whose key is (version 0, type: 1 commit,
// 0 abort) and whose value is (version 0, coordinator epoch 0), as a Kafka
// transaction coordinator writes it.
func Marker(pid int64, epoch int16, commit bool, ts int64) []byte {
	typ := byte(0)
	if commit {
		typ = 1
	}
	var b Builder
	b.SetProducer(pid, epoch, -1)
	b.Add(ts, []byte{0, 0, 0, typ}, []byte{0, 0, 0, 0, 0, 0}, nil)
	return SetAttributes(b.Bytes(), AttrTransactional|AttrControl)
}

// SetAttributes sets attributes bits (on top of the codec) in the batch b
// and its CRC; it returns b.
func SetAttributes(b []byte, bits int16) []byte {
	a := binary.BigEndian.Uint16(b[OffAttributes:])
	binary.BigEndian.PutUint16(b[OffAttributes:], a|uint16(bits))
	binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
	return b
}
