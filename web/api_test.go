package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// apiServer is a Server on a real log in a temp dir, served by httptest
// on 127.0.0.1 (loopback: every role without credentials).
type apiServer struct {
	t   *testing.T
	s   *Server
	log rlog.Log
	url string
}

func newAPI(t *testing.T, mod func(*Options), lopts *rlog.Options) *apiServer {
	t.Helper()
	if lopts == nil {
		lopts = &rlog.Options{}
	}
	lopts.Dir = t.TempDir()
	l, err := rlog.Open(lopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	o := Options{Log: l, NodeID: "n1", Version: "test", AutoCreateTopics: true}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &apiServer{t: t, s: s, log: o.Log, url: ts.URL}
}

// do sends a request and returns the status and body.
func (a *apiServer) do(method, path, ctype, body string, hdr ...string) (int, string, http.Header) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// records reads every record of a partition straight from the log.
func (a *apiServer) records(topic string, p int32) []batch.Record {
	a.t.Helper()
	start, hwm, err := a.log.Offsets(topic, p)
	if err != nil {
		a.t.Fatal(err)
	}
	var out []batch.Record
	for off := start; off < hwm; {
		recs, err := decodeBatches(mustRead(a.t, a.log, topic, p, off), off)
		if err != nil || len(recs) == 0 {
			a.t.Fatalf("read %s/%d@%d: %v", topic, p, off, err)
		}
		out = append(out, recs...)
		off = recs[len(recs)-1].Offset + 1
	}
	return out
}

func mustRead(t *testing.T, l rlog.Log, topic string, p int32, off int64) []byte {
	t.Helper()
	b, err := l.Read(topic, p, off, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hwms sums the end offsets of every partition of every topic: a refused
// request must leave it unchanged.
func (a *apiServer) hwms() int64 {
	var n int64
	for _, t := range a.log.Topics() {
		for _, p := range t.Partitions {
			n += p.HWM
		}
	}
	return n
}

func wantError(t *testing.T, what string, code int, body string, wantStatus, wantCode int) {
	t.Helper()
	if code != wantStatus {
		t.Errorf("%s: status %d, want %d (%s)", what, code, wantStatus, body)
		return
	}
	var e struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.ErrorCode != wantCode || e.Message == "" {
		t.Errorf("%s: body %s, want error_code %d and a message", what, body, wantCode)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestV2TopicMetadata(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.BrokerID = 7 }, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	code, body, h := a.do("GET", "/topics", "", "")
	if code != 200 || strings.TrimSpace(body) != `["t"]` || h.Get("Content-Type") != v2Type {
		t.Fatalf("GET /topics: %d %s %s", code, body, h.Get("Content-Type"))
	}
	code, body, _ = a.do("GET", "/topics/t", "", "")
	var tj v2Topic
	if code != 200 || json.Unmarshal([]byte(body), &tj) != nil || tj.Name != "t" || len(tj.Partitions) != 3 ||
		tj.Partitions[2].Leader != 7 || !tj.Partitions[2].Replicas[0].InSync || tj.Configs["runnel.fsync"] != "always" {
		t.Fatalf("GET /topics/t: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/topics/t/partitions", "", "")
	if code != 200 || !strings.Contains(body, `"partition":2`) {
		t.Fatalf("GET partitions: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/topics/t/partitions/1", "", "")
	if code != 200 || !strings.Contains(body, `"partition":1`) {
		t.Fatalf("GET partition: %d %s", code, body)
	}
	var bld batch.Builder
	bld.Add(1, nil, []byte("x"), nil)
	if _, err := a.log.Append(context.Background(), "t", 1, bld.Bytes()); err != nil {
		t.Fatal(err)
	}
	code, body, _ = a.do("GET", "/topics/t/partitions/1/offsets", "", "")
	if code != 200 || strings.TrimSpace(body) != `{"beginning_offset":0,"end_offset":1}` {
		t.Fatalf("GET offsets: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/topics/nope", "", "")
	wantError(t, "unknown topic", code, body, 404, codeTopicNotFound)
	code, body, _ = a.do("GET", "/topics/nope/partitions", "", "")
	wantError(t, "unknown topic partitions", code, body, 404, codeTopicNotFound)
	for _, p := range []string{"3", "-1", "x"} {
		code, body, _ = a.do("GET", "/topics/t/partitions/"+p+"/offsets", "", "")
		wantError(t, "partition "+p, code, body, 404, codePartitionUnknown)
	}
}

func TestProduceBinary(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	body := `{"records":[
		{"key":"` + b64("k1") + `","value":"` + b64("v1") + `"},
		{"value":"` + b64("\x00\xff") + `","partition":2,"headers":[{"key":"h","value":"` + b64("hv") + `"},{"key":"n","value":null}],"timestamp":1700000000000},
		{"key":null,"value":null,"partition":3}]}`
	before := time.Now().UnixMilli()
	code, resp, h := a.do("POST", "/topics/t", v2Binary, body)
	if code != 200 || h.Get("Content-Type") != v2Type {
		t.Fatalf("produce: %d %s", code, resp)
	}
	var pr produceResponse
	if err := json.Unmarshal([]byte(resp), &pr); err != nil || len(pr.Offsets) != 3 {
		t.Fatalf("answer %s: %v", resp, err)
	}
	kp := batch.Partition([]byte("k1"), 4)
	if *pr.Offsets[0].Partition != kp || *pr.Offsets[0].Offset != 0 || *pr.Offsets[1].Partition != 2 || *pr.Offsets[2].Partition != 3 || pr.Offsets[0].ErrorCode != nil {
		t.Fatalf("offsets %s (key k1 goes to %d)", resp, kp)
	}
	if !strings.Contains(resp, `"key_schema_id":null`) || !strings.Contains(resp, `"error_code":null`) {
		t.Errorf("answer lacks v2's null fields: %s", resp)
	}
	r0 := a.records("t", kp)
	if len(r0) != 1 || string(r0[0].Key) != "k1" || string(r0[0].Value) != "v1" || r0[0].Timestamp < before {
		t.Fatalf("stored %+v", r0)
	}
	r2 := a.records("t", 2)
	if len(r2) != 1 || string(r2[0].Value) != "\x00\xff" || r2[0].Timestamp != 1700000000000 || r2[0].Key != nil {
		t.Fatalf("stored %+v", r2)
	}
	hs := r2[0].Headers
	if len(hs) != 3 || hs[0].Key != "h" || string(hs[0].Value) != "hv" || hs[1].Key != "n" || hs[1].Value != nil || hs[2].Key != HeaderIngestTime {
		t.Fatalf("headers %+v", hs)
	}
	r3 := a.records("t", 3)
	if len(r3) != 1 || r3[0].Key != nil || r3[0].Value != nil {
		t.Fatalf("null key and value stored as %+v", r3)
	}
	// A record with no timestamp of its own has the ingest time as its
	// timestamp and no ingest-time header.
	for _, h := range r0[0].Headers {
		if h.Key == HeaderIngestTime {
			t.Fatal("ingest-time header on a record without a timestamp of its own")
		}
	}
}

func TestProduceEmbeddedFormats(t *testing.T) {
	a := newAPI(t, nil, nil)
	code, resp, _ := a.do("POST", "/topics/j", v2JSON+"; charset=utf-8", `{"records":[{"key":"k","value":{"t": 21.5, "u":"C"}},{"value":"text"}]}`)
	if code != 200 {
		t.Fatalf("json produce: %d %s", code, resp)
	}
	recs := a.records("j", 0)
	if len(recs) != 2 || string(recs[0].Key) != `"k"` || string(recs[0].Value) != `{"t":21.5,"u":"C"}` || string(recs[1].Value) != `"text"` {
		t.Fatalf("vnd.kafka.json stored %q %q %q", recs[0].Key, recs[0].Value, recs[1].Value)
	}
	code, resp, h := a.do("POST", "/topics/p", plainJSON, `{"records":[{"key":"sensor-1","value":"21.5"},{"value":[1,2]}]}`)
	if code != 200 || h.Get("Content-Type") != plainJSON {
		t.Fatalf("plain produce: %d %s", code, resp)
	}
	recs = a.records("p", 0)
	if len(recs) != 2 || string(recs[0].Key) != "sensor-1" || string(recs[0].Value) != "21.5" || string(recs[1].Value) != "[1,2]" {
		t.Fatalf("application/json stored %q %q %q", recs[0].Key, recs[0].Value, recs[1].Value)
	}
}

func TestProducePartitionPath(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	code, resp, _ := a.do("POST", "/topics/t/partitions/1", plainJSON, `{"records":[{"key":"a","value":"1"},{"key":"b","value":"2","partition":1}]}`)
	if code != 200 || len(a.records("t", 1)) != 2 {
		t.Fatalf("partition produce: %d %s", code, resp)
	}
	code, resp, _ = a.do("POST", "/topics/t/partitions/1", plainJSON, `{"records":[{"value":"x","partition":0}]}`)
	wantError(t, "record partition differs from the path", code, resp, 422, codeBadOffset)
	code, resp, _ = a.do("POST", "/topics/t/partitions/2", plainJSON, `{"records":[{"value":"x"}]}`)
	wantError(t, "path partition out of range", code, resp, 404, codePartitionUnknown)
}

// TestProduceBadInput: every refused request is answered with a precise
// 4xx and a v2 error body, and stores nothing.
func TestProduceBadInput(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.MaxBodyBytes = 1000 }, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 2, MaxBatchBytes: 500}); err != nil {
		t.Fatal(err)
	}
	good := `{"value":"` + b64("ok") + `"}`
	cases := []struct {
		name, path, ctype, body string
		status, code            int
	}{
		{"malformed JSON", "/topics/t", v2Binary, `{"records":[` + good + `,`, 400, codeBadRequest},
		{"two documents", "/topics/t", v2Binary, `{"records":[` + good + `]} {}`, 400, codeBadRequest},
		{"empty body", "/topics/t", v2Binary, ``, 400, codeBadRequest},
		{"no records", "/topics/t", v2Binary, `{"records":[]}`, 422, codeBadRecord},
		{"unknown field", "/topics/t", v2Binary, `{"records":[{"valeu":"eA=="}]}`, 422, codeBadRecord},
		{"schema (Avro) not served", "/topics/t", v2Binary, `{"value_schema":"x","records":[` + good + `]}`, 422, codeBadRecord},
		{"wrong type", "/topics/t", v2Binary, `{"records":[{"value":"eA==","partition":"0"}]}`, 422, codeBadRecord},
		{"bad base64 in the second record", "/topics/t", v2Binary, `{"records":[` + good + `,{"value":"not base64!"}]}`, 422, codeBadRecord},
		{"base64 value not a string", "/topics/t", v2Binary, `{"records":[{"value":{"a":1}}]}`, 422, codeBadRecord},
		{"bad base64 header", "/topics/t", v2Binary, `{"records":[{"value":"eA==","headers":[{"key":"h","value":"%%"}]}]}`, 422, codeBadRecord},
		{"empty header key", "/topics/t", v2Binary, `{"records":[{"value":"eA==","headers":[{"key":"","value":"eA=="}]}]}`, 422, codeBadRecord},
		{"negative timestamp", "/topics/t", v2Binary, `{"records":[{"value":"eA==","timestamp":-5}]}`, 422, codeBadRecord},
		{"partition out of range", "/topics/t", v2Binary, `{"records":[` + good + `,{"value":"eA==","partition":2}]}`, 422, codeBadOffset},
		{"negative partition", "/topics/t", v2Binary, `{"records":[{"value":"eA==","partition":-1}]}`, 422, codeBadOffset},
		{"record over max.message.bytes", "/topics/t", plainJSON, `{"records":[` + good + `,{"value":"` + strings.Repeat("x", 600) + `"}]}`, 413, codeRecordTooLarge},
		{"wrong content type", "/topics/t", "text/plain", `{"records":[` + good + `]}`, 415, codeUnsupportedType},
		{"avro content type", "/topics/t", "application/vnd.kafka.avro.v2+json", `{"records":[` + good + `]}`, 415, codeUnsupportedType},
		{"form post", "/topics/t", "application/x-www-form-urlencoded", `a=b`, 415, codeUnsupportedType},
		{"no content type", "/topics/t", "", `{"records":[` + good + `]}`, 415, codeUnsupportedType},
		{"body over the cap", "/topics/t", v2Binary, `{"records":[{"value":"` + strings.Repeat("A", 2000) + `"}]}`, 413, codeTooLarge},
		{"invalid topic name", "/topics/bad%20name", v2Binary, `{"records":[` + good + `]}`, 422, codeBadTopicName},
		{"bad acks", "/topics/t?acks=2", v2Binary, `{"records":[` + good + `]}`, 400, codeBadRequest},
	}
	for _, c := range cases {
		before := a.hwms()
		code, body, _ := a.do("POST", c.path, c.ctype, c.body)
		wantError(t, c.name, code, body, c.status, c.code)
		if a.hwms() != before {
			t.Errorf("%s: records stored by a refused request", c.name)
		}
	}
	if len(a.log.Topics()) != 1 {
		t.Errorf("a refused request created a topic: %v", a.log.Topics())
	}
}

// countingReader counts what the server read of a body.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += len(p)
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestProduceOversizeNotRead: a body whose Content-Length is over the cap
// is refused without reading it; one without a length (chunked) is
// refused once the cap is passed, not read to its end.
func TestProduceOversizeNotRead(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.MaxBodyBytes = 1000 }, nil)
	cr := &countingReader{}
	req := httptest.NewRequest("POST", "/topics/t", io.LimitReader(cr, 1<<30))
	req.ContentLength = 1 << 30
	req.Header.Set("Content-Type", v2Binary)
	req.RemoteAddr, req.Host = "127.0.0.1:5555", "127.0.0.1:8080"
	rec := httptest.NewRecorder()
	a.s.Handler().ServeHTTP(rec, req)
	if rec.Code != 413 || cr.n != 0 {
		t.Fatalf("declared 1 GiB body: status %d, %d bytes read", rec.Code, cr.n)
	}
	cr = &countingReader{}
	req = httptest.NewRequest("POST", "/topics/t", io.LimitReader(cr, 1<<30))
	req.ContentLength = -1
	req.Header.Set("Content-Type", v2Binary)
	req.RemoteAddr, req.Host = "127.0.0.1:5555", "127.0.0.1:8080"
	rec = httptest.NewRecorder()
	a.s.Handler().ServeHTTP(rec, req)
	if rec.Code != 413 || cr.n > 64<<10 {
		t.Fatalf("chunked 1 GiB body: status %d, %d bytes read", rec.Code, cr.n)
	}
}

func TestProduceAutoCreate(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.AutoCreateTopics = false }, nil)
	code, body, _ := a.do("POST", "/topics/new", plainJSON, `{"records":[{"value":"x"}]}`)
	wantError(t, "unknown topic, auto-create off", code, body, 404, codeTopicNotFound)
	if _, err := a.log.Topic("new"); !errors.Is(err, rlog.ErrUnknownTopic) {
		t.Fatalf("topic created with auto-create off: %v", err)
	}
	b := newAPI(t, nil, nil)
	if code, body, _ := b.do("POST", "/topics/new", plainJSON, `{"records":[{"value":"x"}]}`); code != 200 {
		t.Fatalf("auto-create on: %d %s", code, body)
	}
	if len(b.records("new", 0)) != 1 {
		t.Fatal("record not stored in the auto-created topic")
	}
}

// TestProduceDiskFull: the log refuses the append; the answer is a
// retriable 503 naming each record's error, and nothing is stored.
func TestProduceDiskFull(t *testing.T) {
	// A 1 TiB volume with 1 MiB free, under a 1 GiB guard threshold.
	a := newAPI(t, nil, &rlog.Options{MinFreeBytes: 1 << 30,
		DiskUsage: func(string) (uint64, uint64, error) { return 1 << 20, 1 << 40, nil }})
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	code, body, _ := a.do("POST", "/topics/t", plainJSON, `{"records":[{"value":"a","partition":0},{"value":"b","partition":1}]}`)
	if code != 503 {
		t.Fatalf("disk full: %d %s", code, body)
	}
	var pr produceResponse
	if err := json.Unmarshal([]byte(body), &pr); err != nil || len(pr.Offsets) != 2 || pr.Offsets[0].Offset != nil ||
		pr.Offsets[0].ErrorCode == nil || *pr.Offsets[0].ErrorCode != recordErrRetriable || pr.ErrorCode == nil || *pr.ErrorCode != codeUnavailable {
		t.Fatalf("disk full answer %s", body)
	}
	if a.hwms() != 0 {
		t.Fatal("records stored on a full disk")
	}
}

type allLog struct {
	rlog.Log
	calls int
}

func (a *allLog) AppendAsyncAll(topic string, partition int32, b []byte, done func(int64, error)) {
	a.calls++
	a.Log.AppendAsync(topic, partition, b, done)
}

func TestProduceAcksAll(t *testing.T) {
	var al *allLog
	a := newAPI(t, func(o *Options) { al = &allLog{Log: o.Log}; o.Log = al }, nil)
	if code, body, _ := a.do("POST", "/topics/t", plainJSON, `{"records":[{"value":"x"}]}`); code != 200 || al.calls != 0 {
		t.Fatalf("acks default: %d %s, %d acks=all appends", code, body, al.calls)
	}
	for _, v := range []string{"all", "-1"} {
		if code, body, _ := a.do("POST", "/topics/t?acks="+v, plainJSON, `{"records":[{"value":"x"}]}`); code != 200 {
			t.Fatalf("acks=%s: %d %s", v, code, body)
		}
	}
	if al.calls != 2 {
		t.Fatalf("acks=all appends: %d, want 2", al.calls)
	}
}

// TestProduceManyPartitionsLarge: records over the batch limit in total
// are split into several batches of one append per partition; the
// offsets answered are the stored ones.
func TestProduceManyPartitionsLarge(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 3, MaxBatchBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	var recs []string
	for i := range 60 {
		recs = append(recs, `{"key":"k`+string(rune('a'+i%26))+`","value":"`+strings.Repeat("v", 300)+`"}`)
	}
	code, body, _ := a.do("POST", "/topics/t", plainJSON, `{"records":[`+strings.Join(recs, ",")+`]}`)
	if code != 200 {
		t.Fatalf("produce: %d %s", code, body)
	}
	var pr produceResponse
	if err := json.Unmarshal([]byte(body), &pr); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]bool{}
	for i, o := range pr.Offsets {
		k := [2]int64{int64(*o.Partition), *o.Offset}
		if seen[k] {
			t.Fatalf("offset %v answered twice", k)
		}
		seen[k] = true
		got := a.records("t", *o.Partition)
		if *o.Offset >= int64(len(got)) || string(got[*o.Offset].Key) != "k"+string(rune('a'+i%26)) {
			t.Fatalf("record %d answered at %v, not stored there", i, k)
		}
	}
}

func TestReadRecords(t *testing.T) {
	a := newAPI(t, nil, nil)
	code, body, _ := a.do("POST", "/topics/t", plainJSON, `{"records":[{"key":"k","value":"hello","headers":[{"key":"h","value":"`+b64("hv")+`"}]},{"value":"`+b64("\xff")+`"}]}`)
	if code != 200 {
		t.Fatalf("produce %d %s", code, body)
	}
	code, body, h := a.do("GET", "/topics/t/partitions/0/records?offset=0", "", "")
	var recs []recordJSON
	if code != 200 || h.Get("Content-Type") != plainJSON || json.Unmarshal([]byte(body), &recs) != nil || len(recs) != 2 {
		t.Fatalf("read text: %d %s", code, body)
	}
	if recs[0].Key != "k" || recs[0].Value != "hello" || recs[0].Headers[0].Key != "h" || *recs[0].Headers[0].Value != "hv" || recs[0].Timestamp == 0 || recs[0].Topic != "t" {
		t.Fatalf("text record %+v", recs[0])
	}
	if recs[1].Value != b64(b64("\xff")) {
		// the plain-JSON produce stored the string as text: its bytes are the base64 text
		if recs[1].Value != b64("\xff") {
			t.Fatalf("second record %+v", recs[1])
		}
	}
	code, body, h = a.do("GET", "/topics/t/partitions/0/records?offset=1", "", "", "Accept", v2Binary)
	if code != 200 || h.Get("Content-Type") != v2Binary || !strings.Contains(body, `"value":"`+b64(b64("\xff"))+`"`) || !strings.Contains(body, `"offset":1`) || strings.Contains(body, `"offset":0`) {
		t.Fatalf("read binary from offset 1: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/topics/t/partitions/0/records?offset=0", "", "", "Accept", v2JSON)
	if code != 200 || !strings.Contains(body, `"value":"hello"`) {
		t.Fatalf("read json: %d %s", code, body)
	}
	// Bytes that are not UTF-8 come base64 in the text form, flagged.
	var bld batch.Builder
	bld.Add(5, []byte{0xfe}, []byte{0xff, 0}, nil)
	if _, err := a.log.Append(context.Background(), "t", 0, bld.Bytes()); err != nil {
		t.Fatal(err)
	}
	code, body, _ = a.do("GET", "/topics/t/partitions/0/records?offset=2", "", "")
	if code != 200 || !strings.Contains(body, `"value":"/wA=","headers":[],"key_encoding":"base64","value_encoding":"base64"`) {
		t.Fatalf("binary bytes in text form: %d %s", code, body)
	}
	// max_bytes bounds the answer but always holds one record.
	code, body, _ = a.do("GET", "/topics/t/partitions/0/records?offset=0&max_bytes=1", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &recs) != nil || len(recs) == 0 || len(recs) == 3 {
		t.Fatalf("max_bytes=1: %d %s", code, body)
	}
	// Errors.
	for _, c := range []struct {
		name, q      string
		status, code int
		accept       string
	}{
		{"no offset", "", 400, codeBadRequest, ""},
		{"bad offset", "offset=x", 400, codeBadRequest, ""},
		{"offset past the end", "offset=4", 422, codeBadOffset, ""},
		{"negative offset", "offset=-1", 422, codeBadOffset, ""},
		{"max_bytes 0", "offset=0&max_bytes=0", 400, codeBadRequest, ""},
		{"timeout too long", "offset=0&timeout=999999", 400, codeBadRequest, ""},
		{"unsupported accept", "offset=0", 406, codeNotAcceptable, "application/vnd.kafka.avro.v2+json"},
	} {
		hdr := []string{}
		if c.accept != "" {
			hdr = []string{"Accept", c.accept}
		}
		code, body, _ := a.do("GET", "/topics/t/partitions/0/records?"+c.q, "", "", hdr...)
		wantError(t, c.name, code, body, c.status, c.code)
	}
	code, body, _ = a.do("GET", "/topics/none/partitions/0/records?offset=0", "", "")
	wantError(t, "unknown topic", code, body, 404, codeTopicNotFound)
	code, body, _ = a.do("GET", "/topics/t/partitions/9/records?offset=0", "", "")
	wantError(t, "unknown partition", code, body, 404, codePartitionUnknown)
}

// TestReadRecordsLongPoll: a read at the end waits for the next record
// (up to timeout) and answers it; with nothing coming it answers an empty
// list when the timeout ends.
func TestReadRecordsLongPoll(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, body, _ := a.do("GET", "/topics/t/partitions/0/records?offset=0&timeout=200", "", "")
	if code != 200 || strings.TrimSpace(body) != "[]" || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("empty long poll: %d %s after %v", code, body, time.Since(start))
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		var bld batch.Builder
		bld.Add(1, nil, []byte("late"), nil)
		a.log.Append(context.Background(), "t", 0, bld.Bytes())
	}()
	code, body, _ = a.do("GET", "/topics/t/partitions/0/records?offset=0&timeout=10000", "", "")
	if code != 200 || !strings.Contains(body, `"value":"late"`) {
		t.Fatalf("long poll: %d %s", code, body)
	}
}

func TestMQTTPublishEndpoint(t *testing.T) {
	var got []MQTTMessage
	var fail error
	a := newAPI(t, func(o *Options) {
		o.MQTTPublish = func(ctx context.Context, m MQTTMessage) error {
			if fail != nil {
				return fail
			}
			got = append(got, m)
			if m.Topic == "unrouted" {
				return ErrNotStored
			}
			return nil
		}
	}, nil)
	code, body, _ := a.do("POST", "/api/v5/publish", plainJSON, `{"topic":"a/b","payload":"hi","qos":1,"retain":true,"clientid":"c1","properties":{"user_properties":{"z":"1","a":"2"},"content_type":"text/plain"}}`)
	if code != 200 || !strings.Contains(body, `"stored":true`) {
		t.Fatalf("publish: %d %s", code, body)
	}
	m := got[0]
	if m.Topic != "a/b" || string(m.Payload) != "hi" || m.QoS != 1 || !m.Retain || m.ClientID != "c1" || m.ContentType != "text/plain" ||
		len(m.UserProperties) != 2 || m.UserProperties[0] != [2]string{"a", "2"} {
		t.Fatalf("message %+v", m)
	}
	code, body, _ = a.do("POST", "/mqtt/publish", plainJSON, `{"topic":"x","payload":"`+b64("\x00\x01")+`","payload_encoding":"base64"}`)
	if code != 200 || string(got[1].Payload) != "\x00\x01" || got[1].QoS != 0 {
		t.Fatalf("base64 publish: %d %s %+v", code, body, got[1])
	}
	code, body, _ = a.do("POST", "/mqtt/publish", plainJSON, `{"topic":"unrouted","payload":"p"}`)
	if code != 200 || !strings.Contains(body, `"stored":false`) {
		t.Fatalf("unrouted publish: %d %s", code, body)
	}
	code, body, _ = a.do("POST", "/api/v5/publish/bulk", plainJSON, `[{"topic":"b1","payload":"1"},{"topic":"b2","payload":"2"}]`)
	if code != 200 || len(got) != 5 || got[4].Topic != "b2" {
		t.Fatalf("bulk: %d %s", code, body)
	}
	n := len(got)
	for _, c := range []struct {
		name, path, ctype, body string
		status, code            int
	}{
		{"no topic", "/mqtt/publish", plainJSON, `{"payload":"x"}`, 400, codeBadRequest},
		{"bad qos", "/mqtt/publish", plainJSON, `{"topic":"a","qos":3}`, 400, codeBadRequest},
		{"bad base64", "/mqtt/publish", plainJSON, `{"topic":"a","payload":"!!","payload_encoding":"base64"}`, 400, codeBadRequest},
		{"bad encoding", "/mqtt/publish", plainJSON, `{"topic":"a","payload":"x","payload_encoding":"hex"}`, 400, codeBadRequest},
		{"malformed JSON", "/mqtt/publish", plainJSON, `{"topic":`, 400, codeBadRequest},
		{"unknown field", "/mqtt/publish", plainJSON, `{"topic":"a","qso":1}`, 422, codeBadRecord},
		{"wrong content type", "/mqtt/publish", "text/plain", `{"topic":"a"}`, 415, codeUnsupportedType},
		{"bulk with one bad message", "/api/v5/publish/bulk", plainJSON, `[{"topic":"a"},{"topic":""}]`, 400, codeBadRequest},
		{"empty bulk", "/api/v5/publish/bulk", plainJSON, `[]`, 400, codeBadRequest},
	} {
		code, body, _ := a.do("POST", c.path, c.ctype, c.body)
		wantError(t, c.name, code, body, c.status, c.code)
	}
	if len(got) != n {
		t.Fatalf("refused publishes reached the broker: %+v", got[n:])
	}
	fail = fmt.Errorf("%w: topic has a wildcard", ErrInvalidMessage)
	code, body, _ = a.do("POST", "/mqtt/publish", plainJSON, `{"topic":"a/+"}`)
	wantError(t, "broker refuses", code, body, 400, codeBadRequest)
	if !strings.Contains(body, `"invalid MQTT message: topic has a wildcard"`) {
		t.Errorf("broker refuses: %s, want the reason once, without package prefixes", body)
	}
	fail = rlog.ErrDiskFull
	code, body, _ = a.do("POST", "/mqtt/publish", plainJSON, `{"topic":"a"}`)
	wantError(t, "disk full", code, body, 503, codeUnavailable)
	// MQTT off.
	b := newAPI(t, nil, nil)
	code, body, _ = b.do("POST", "/mqtt/publish", plainJSON, `{"topic":"a"}`)
	wantError(t, "MQTT off", code, body, 404, 404)
}

// TestUnknownEndpointJSON: a path no endpoint serves and a method an
// endpoint does not take are answered with the same JSON error body as
// every other error, the 405 keeping its Allow header; the mux's redirect
// of a path without its trailing slash still works.
func TestUnknownEndpointJSON(t *testing.T) {
	a := newAPI(t, nil, nil)
	code, body, _ := a.do("GET", "/nope", "", "")
	wantError(t, "unknown path", code, body, 404, 404)
	code, body, hdr := a.do("DELETE", "/api/status", "", "")
	wantError(t, "wrong method", code, body, 405, 405)
	if ct := hdr.Get("Content-Type"); ct != "application/json" || !strings.Contains(hdr.Get("Allow"), "GET") || !strings.Contains(body, "GET") {
		t.Errorf("405: Content-Type %q, Allow %q, body %s", ct, hdr.Get("Allow"), body)
	}
	if code, body, _ := a.do("GET", "/ui", "", ""); code != 200 {
		t.Errorf("GET /ui (redirect to /ui/): %d %s", code, body)
	}
}
