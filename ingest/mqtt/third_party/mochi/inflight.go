// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]packets.Packet // internal contains the inflight packets (runnel: outbound flows only)
	inbound             map[uint16]packets.Packet // runnel: acks of inbound QoS 1/2 flows (PUBACK, PUBREC, PUBCOMP), see inbound.go
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota
	parked              parkedQueue               // runnel: publishes waiting for send quota (flow.go)
	took                map[uint16]bool           // runnel: flow-controlled ids → holds a unit of send quota
	seq                 map[uint16]uint64         // runnel: send order of outbound publishes (GetAll)
	nextSeq             uint64                    // runnel
	bytes               int64                     // runnel: topic and payload bytes of the outbound flows (sizeOf)
	total               *int64                    // runnel: the server's Info.InflightBytes, kept with bytes (nil: none)
}

// sizeOf is what an outbound flow's packet counts towards the session's
// and the server's queued bytes (runnel).
func sizeOf(m packets.Packet) int64 { return int64(len(m.TopicName) + len(m.Payload)) }

// putOutLocked stores the outbound flow m under id, keeping the byte
// counts (runnel). i must be locked.
func (i *Inflight) putOutLocked(id uint16, m packets.Packet) {
	d := sizeOf(m)
	if old, ok := i.internal[id]; ok {
		d -= sizeOf(old)
	}
	i.internal[id] = m
	i.addBytesLocked(d)
}

// delOutLocked deletes the outbound flow id, keeping the byte counts
// (runnel). i must be locked.
func (i *Inflight) delOutLocked(id uint16) {
	if old, ok := i.internal[id]; ok {
		delete(i.internal, id)
		i.addBytesLocked(-sizeOf(old))
	}
}

func (i *Inflight) addBytesLocked(d int64) {
	i.bytes += d
	if i.total != nil && d != 0 {
		atomic.AddInt64(i.total, d)
	}
}

// detach stops counting i in the server's total (runnel): what it holds
// leaves the total now, and later puts count in i only.
func (i *Inflight) detach() {
	i.Lock()
	defer i.Unlock()
	if i.total != nil {
		atomic.AddInt64(i.total, -i.bytes)
		i.total = nil
	}
}

// Bytes is the topic and payload bytes of the session's outbound flows,
// queued while its client is away included (runnel).
func (i *Inflight) Bytes() int64 {
	i.RLock()
	defer i.RUnlock()
	return i.bytes
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]packets.Packet{},
	}
}

// newInflightsOf is NewInflights counting its bytes in o's server's
// Info.InflightBytes too (runnel).
func newInflightsOf(o *ops) *Inflight {
	i := NewInflights()
	if o != nil && o.info != nil {
		i.total = &o.info.InflightBytes
	}
	return i
}

// Set adds or updates an inflight packet by packet id.
//
// runnel: the server's acks of inbound flows (PUBACK, PUBREC, PUBCOMP: ids
// chosen by the client) go to the inbound map, everything else (PUBLISH,
// PUBREL: ids chosen by the server) to the outbound one.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	mp := i.mapFor(m.FixedHeader.Type)
	_, ok := mp[m.PacketID]
	switch m.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp: // inbound (mapFor)
		mp[m.PacketID] = m
	default:
		i.putOutLocked(m.PacketID, m) // runnel: byte counts
	}
	return !ok
}

// Get returns an inflight packet by packet id.
//
// runnel: an outbound flow's packet if there is one, else an inbound
// flow's; code that knows the direction uses GetOutbound or GetInbound.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m, true
	}
	if m, ok := i.inbound[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// Len returns the size of the inflight messages map.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal) + len(i.inbound)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	defer i.RUnlock()
	for k, v := range i.internal {
		c.internal[k] = v
	}
	c.total = i.total // runnel: the clone counts too; the original is cleared after
	c.addBytesLocked(i.bytes)
	for k, v := range i.inbound { // runnel
		c.mapFor(v.FixedHeader.Type)[k] = v
	}
	c.seq = make(map[uint16]uint64, len(i.seq)) // runnel: keep send order
	for k, v := range i.seq {
		c.seq[k] = v
	}
	c.nextSeq = i.nextSeq
	return c
}

// GetAll returns all the inflight messages.
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	m := []packets.Packet{}
	for _, v := range i.internal {
		if !immediate || (immediate && v.Expiry < 0) {
			m = append(m, v)
		}
	}
	for _, v := range i.inbound { // runnel
		if !immediate || (immediate && v.Expiry < 0) {
			m = append(m, v)
		}
	}

	seq := i.seq
	sort.Slice(m, func(i, j int) bool {
		// runnel: send order where it is known (SetOrPark), else
		// Created (full seconds, not truncated to 16 bits) then packet id;
		// map iteration order is random.
		si, oki := seq[m[i].PacketID]
		sj, okj := seq[m[j].PacketID]
		if oki && okj {
			return si < sj
		}
		if m[i].Created != m[j].Created {
			return m[i].Created < m[j].Created
		}
		return m[i].PacketID < m[j].PacketID
	})

	return m
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	m := i.GetAll(true)
	if len(m) > 0 {
		return m[0], true
	}

	return packets.Packet{}, false
}

// Delete removes an in-flight message from the map. Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[id]
	if !ok { // runnel: no outbound flow with this id: an inbound one
		return i.deleteInboundLocked(id)
	}
	i.forgetLocked(id) // runnel: flow-control state
	i.delOutLocked(id)

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}
