package kafka

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestApiVersions(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	r := dialRaw(t, ts.addr)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1.0"
		resp := r.roundTrip(req, int32(v)+1).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		found := map[int16]kmsg.ApiVersionsResponseApiKey{}
		for _, k := range resp.ApiKeys {
			found[k.ApiKey] = k
		}
		for _, want := range []int16{0, 1, 2, 3, 10, 18, 19, 20, 22, 32, 33, 37, 44} {
			if _, ok := found[want]; !ok {
				t.Fatalf("v%d: key %d (%s) not advertised", v, want, kmsg.NameForKey(want))
			}
		}
		if p := found[0]; p.MinVersion != 3 || p.MaxVersion != 12 {
			t.Fatalf("produce versions %d-%d, want 3-12", p.MinVersion, p.MaxVersion)
		}
	}
	// A version above the served range: v0 response, UNSUPPORTED_VERSION,
	// with the key list, so the client can retry lower.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 5
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1.0"
	r.write(frame(req, 77))
	body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 77 {
		t.Fatalf("corr %d", corr)
	}
	v0 := kmsg.NewPtrApiVersionsResponse()
	if err := v0.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if v0.ErrorCode != codeUnsupportedVersion || len(v0.ApiKeys) < 10 {
		t.Fatalf("v5: error %d, %d keys; want 35 and the key list", v0.ErrorCode, len(v0.ApiKeys))
	}
}

func TestUnsupportedAnswered(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	r := dialRaw(t, ts.addr)

	// A key kmsg knows but runnel does not serve: a proper response.
	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Version = 1
	resp := r.roundTrip(dr, 1).(*kmsg.DeleteRecordsResponse)
	_ = resp
	// A served key at a version below the served range.
	pr := kmsg.NewPtrProduceRequest()
	pr.Version = 2
	pr.Acks = 1
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "x", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0}}}}
	r.roundTrip(pr, 2)
	// EndTxn above the served versions (v5: transactions v2, KIP-890)
	// carries a top-level error code.
	et := kmsg.NewPtrEndTxnRequest()
	et.Version = 5
	etr := r.roundTrip(et, 3).(*kmsg.EndTxnResponse)
	if etr.ErrorCode != codeUnsupportedVersion {
		t.Fatalf("EndTxn error %d, want %d", etr.ErrorCode, codeUnsupportedVersion)
	}
	// An unknown key: correlation id and the error code.
	b := []byte{0, 0, 0, 0, 0x01, 0x2c, 0, 0, 0, 0, 0, 4, 0xff, 0xff}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	r.write(b)
	body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != 6 || binary.BigEndian.Uint32(body) != 4 || int16(binary.BigEndian.Uint16(body[4:])) != codeUnsupportedVersion {
		t.Fatalf("unknown key answer % x", body)
	}
	// A null client id is valid.
	nullID := frame(kmsg.NewPtrApiVersionsRequest(), 6)
	nullID = append(nullID[:12], append([]byte{0xff, 0xff}, nullID[18:]...)...)
	binary.BigEndian.PutUint32(nullID, uint32(len(nullID)-4))
	r.write(nullID)
	if body, err := r.readFrame(); err != nil || binary.BigEndian.Uint32(body) != 6 {
		t.Fatalf("null client id: %v", err)
	}
	// The connection still serves.
	mr := kmsg.NewPtrMetadataRequest()
	mr.Version = 9
	if m := r.roundTrip(mr, 5).(*kmsg.MetadataResponse); len(m.Brokers) != 1 {
		t.Fatalf("metadata after unsupported: %+v", m)
	}
	if ts.Stats().Unsupported < 4 {
		t.Fatalf("Unsupported = %d, want >= 4", ts.Stats().Unsupported)
	}
}

// TestBadFrames throws garbage, truncated frames and oversized length
// prefixes at the port; each closes only its connection, and a normal
// client is served afterwards (and during).
func TestBadFrames(t *testing.T) {
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.MaxFrameBytes = 1 << 20 })
	ctx := testCtx(t, 20*time.Second)
	good := newClient(t, ts.addr, kgo.DefaultProduceTopic("ok"), kgo.AllowAutoTopicCreation())
	if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"2GiB prefix", []byte{0x80, 0, 0, 0, 1, 2, 3}},
		{"2GiB-1 prefix", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"over MaxFrameBytes", []byte{0x00, 0x20, 0x00, 0x00}},
		{"tiny frame", []byte{0, 0, 0, 3, 0, 18, 0}},
		{"garbage fetch", []byte{0, 0, 0, 16, 0, 1, 0, 4, 1, 2, 3, 4, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"garbage body", append([]byte{0, 0, 0, 20, 0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff}, []byte("xxxxxxxxxxxx")...)},
		{"bad client id length", []byte{0, 0, 0, 10, 0, 3, 0, 9, 0, 0, 0, 1, 0x7f, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.addr)
			r.write(tc.data)
			r.expectClosed()
		})
	}
	t.Run("truncated", func(t *testing.T) {
		r := dialRaw(t, ts.addr)
		r.write([]byte{0, 0, 1, 0, 0, 3, 0, 9}) // announces 256 bytes, sends 4
		r.nc.(interface{ CloseWrite() error }).CloseWrite()
		r.expectClosed()
	})
	if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, ts.addr, kgo.ConsumeTopics("ok"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := 0
	for n < 2 {
		fs := fresh.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if st := ts.Stats(); st.BadFrames < uint64(len(cases)) {
		t.Fatalf("BadFrames = %d, want >= %d", st.BadFrames, len(cases))
	}
}
