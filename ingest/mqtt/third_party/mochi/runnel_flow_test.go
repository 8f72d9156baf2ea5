package mqtt

// runnel: tests of runnel's flow-control patch (flow.go). They run with
// upstream's suite (test-upstream.sh), which provides newServer and
// newTestClient.

import (
	"io"
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func flowClient(t *testing.T, recvMax int32) *Client {
	t.Helper()
	cl, r, _ := newTestClient()
	t.Cleanup(func() { r.Close() })
	cl.State.Inflight.ResetSendQuota(recvMax)
	return cl
}

func pub(id uint16, qos byte) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, PacketID: id, TopicName: "t"}
}

func quota(cl *Client) int32 { return atomic.LoadInt32(&cl.State.Inflight.sendQuota) }

// An inbound QoS 1 publish reusing the id of an outbound flow must not end
// that flow: its PUBACK still returns the quota.
func TestRunnelInboundIDClashKeepsOutboundFlow(t *testing.T) {
	s := newServer()
	cl, r, _ := newTestClient()
	defer r.Close()
	go io.Copy(io.Discard, r) // the client's side of the pipe
	cl.State.Inflight.ResetSendQuota(2)
	cl.Properties.ProtocolVersion = 5
	if _, send := cl.State.Inflight.SetOrPark(pub(5, 1)); !send || quota(cl) != 1 {
		t.Fatalf("first publish: send %v quota %d", send, quota(cl))
	}
	in := pub(5, 1)
	in.ProtocolVersion = 5
	if err := s.processPublish(cl, in); err != nil {
		t.Fatal(err)
	}
	if pk, ok := cl.State.Inflight.Get(5); !ok || pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("outbound flow 5 ended by an inbound publish with the same id: %v %+v", ok, pk.FixedHeader)
	}
	if err := s.processPuback(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 5}); err != nil {
		t.Fatal(err)
	}
	if q := quota(cl); q != 2 {
		t.Fatalf("quota %d after the outbound PUBACK, want 2", q)
	}
}

// A delivery queued (charged) while a resumed session resends is neither
// written twice nor charged twice.
func TestRunnelResendDoesNotChargeTwice(t *testing.T) {
	cl := flowClient(t, 3)
	cl.State.Inflight.SetOrPark(pub(1, 1)) // queued since the resume: charged
	if cl.State.Inflight.resendCharge(pub(1, 1)) {
		t.Fatal("resend wrote a delivery already queued")
	}
	if q := quota(cl); q != 2 {
		t.Fatalf("quota %d, want 2 (charged once)", q)
	}
	cl.completeOutbound(1)
	if q := quota(cl); q != 3 {
		t.Fatalf("quota %d after the ack, want 3", q)
	}
}

// A resent PUBREL holds quota until its PUBCOMP.
func TestRunnelResentPubrelHoldsQuota(t *testing.T) {
	cl := flowClient(t, 1)
	rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 4}
	cl.State.Inflight.Set(rel)
	if !cl.State.Inflight.resendCharge(rel) {
		t.Fatal("PUBREL not resent")
	}
	if _, send := cl.State.Inflight.SetOrPark(pub(5, 1)); send {
		t.Fatal("a publish went out while the resent PUBREL held the only quota")
	}
	cl.completeOutbound(4) // PUBCOMP
	if n := cl.State.Inflight.Parked(); n != 0 {
		t.Fatalf("%d still parked after the PUBCOMP", n)
	}
}

// A flow that expired and gave its quota back does not give it again when
// a late PUBCOMP (or PUBACK) arrives.
func TestRunnelLateAckAfterExpiryNoDoubleCredit(t *testing.T) {
	cl := flowClient(t, 2)
	cl.State.Inflight.SetOrPark(pub(1, 2)) // A: quota 1
	cl.completeOutbound(1)                 // A expires: quota 2
	cl.State.Inflight.SetOrPark(pub(2, 2)) // B: quota 1
	cl.State.Inflight.SetOrPark(pub(3, 2)) // C: quota 0
	if ok := cl.completeOutbound(1); ok {  // late PUBCOMP for A
		t.Fatal("A still inflight")
	}
	if q := quota(cl); q != 0 {
		t.Fatalf("quota %d after a late PUBCOMP, want 0", q)
	}
	if _, send := cl.State.Inflight.SetOrPark(pub(4, 2)); send {
		t.Fatal("a third delivery went out with Receive Maximum 2")
	}
}

// Parked deliveries are released in FIFO order, one per returned quota.
func TestRunnelParkFIFO(t *testing.T) {
	cl := flowClient(t, 1)
	cl.State.Inflight.SetOrPark(pub(1, 1))
	for id := uint16(2); id <= 4; id++ {
		if _, send := cl.State.Inflight.SetOrPark(pub(id, 1)); send {
			t.Fatalf("publish %d sent past the quota", id)
		}
	}
	for want := uint16(2); want <= 4; want++ {
		cl.completeOutbound(want - 1)
		pk := cl.State.outbound.pop()
		if pk == nil || pk.PacketID != want {
			t.Fatalf("released %v, want id %d", pk, want)
		}
		if cl.State.outbound.pop() != nil {
			t.Fatal("more than one released per ack")
		}
	}
}
