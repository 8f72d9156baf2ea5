package kgo

// runnel: tests of runnel's changes to this copy (PATCHES.md). They run in
// test-upstream.sh, beside upstream's own suite.

import (
	"bytes"
	"io"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// Options that need the compiled-out code fail when the client is made,
// with an error that names them, instead of a client that never consumes.
func TestRunnelCompiledOutOptionsRefused(t *testing.T) {
	type refused struct {
		name string
		opts []Opt
		want string
	}
	cases := []refused{{"ShareGroup", []Opt{ShareGroup("g"), ConsumeTopics("t")}, "share groups"}}
	if !runnelKIP848 { // built with kgoomitkip848, as test-upstream.sh builds
		cases = append(cases, refused{"ServerSideBalancer", []Opt{ConsumerGroup("g"), ConsumeTopics("t"), ServerSideBalancer()}, "KIP-848"})
	}
	for _, c := range cases {
		cl, err := NewClient(append([]Opt{SeedBrokers("127.0.0.1:1")}, c.opts...)...)
		if err == nil {
			cl.Close()
			t.Errorf("%s: NewClient succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
	}
	// A classic consumer group is still made.
	cl, err := NewClient(SeedBrokers("127.0.0.1:1"), ConsumerGroup("g"), ConsumeTopics("t"))
	if err != nil {
		t.Fatalf("classic group: %v", err)
	}
	cl.Close()
}

// gzip is the standard library's here: batches it compresses read back
// with klauspost's gzip (what upstream kgo and many clients use), and the
// other way round.
func TestRunnelGzipInterop(t *testing.T) {
	var src []byte
	for i := 0; len(src) < 200<<10; i++ {
		src = append(src, []byte(`{"sensor":"line-7/temp","value":21.5,"seq":`)...)
		src = append(src, byte('0'+i%10), '}')
	}

	comp, err := DefaultCompressor(GzipCompression())
	if err != nil {
		t.Fatal(err)
	}
	got, codec := comp.Compress(new(bytes.Buffer), src)
	if codec != CodecGzip {
		t.Fatalf("codec %v, want gzip", codec)
	}
	zr, err := kgzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(out, src) {
		t.Fatalf("klauspost read of the copy's gzip: %d bytes, err %v; want %d bytes", len(out), err, len(src))
	}

	var kb bytes.Buffer
	zw := kgzip.NewWriter(&kb)
	zw.Write(src)
	zw.Close()
	out, err = DefaultDecompressor().Decompress(kb.Bytes(), CodecGzip)
	if err != nil || !bytes.Equal(out, src) {
		t.Fatalf("the copy's read of klauspost's gzip: %d bytes, err %v; want %d bytes", len(out), err, len(src))
	}
}
