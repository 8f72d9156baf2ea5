package main

// runnel produce TOPIC: one record per line of stdin.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var produceCmd = command{
	name: "produce",
	args: "TOPIC",
	summary: `Produce one record per line read from stdin (a trailing \r is dropped).
Keyed records go to the partition Kafka's default partitioner (murmur2) picks.
Exits 1 if any record was not acknowledged.`,
}

// runProduce implements `runnel produce TOPIC`.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := produceCmd
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	key := fs.StringP("key", "k", "", "key for every record (default: none)")
	keySep := fs.StringP("key-separator", "K", "", "split each line at the first SEP into key and value (lines without SEP have no key)")
	acks := fs.StringP("acks", "a", "all", "acknowledgements: 0, 1, -1 or all")
	partition := fs.Int32P("partition", "p", -1, "write every record to this partition (-1: partitioner)")
	headers := fs.StringArrayP("header", "H", nil, "header key=value added to every record (repeatable)")
	compression := fs.StringP("compression", "z", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	autoCreate := fs.Bool("auto-create", true, "let the server auto-create a missing topic")
	deliveryTimeout := fs.Duration("delivery-timeout", 30*time.Second, "fail a record not acknowledged within this long (0: retry forever)")
	quiet := fs.BoolP("quiet", "q", false, "do not print the summary line on stderr")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.fail(stderr, usageErrorf("want exactly one TOPIC, got %d arguments", fs.NArg()))
	}
	topic := fs.Arg(0)
	if *key != "" && *keySep != "" {
		return c.fail(stderr, usageErrorf("--key and --key-separator are mutually exclusive"))
	}
	if *partition < -1 {
		return c.fail(stderr, usageErrorf("--partition must be >= 0 (or -1), got %d", *partition))
	}
	ackOpts, err := acksOpts(*acks)
	if err != nil {
		return c.fail(stderr, err)
	}
	codec, err := compressionOpt(*compression)
	if err != nil {
		return c.fail(stderr, err)
	}
	hdrs, err := parseHeaders(*headers)
	if err != nil {
		return c.fail(stderr, err)
	}
	opts := append(ackOpts, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
	if *deliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(*deliveryTimeout))
	}
	if *autoCreate {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := cf.newClient(opts...)
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()
	// Brokers that cannot be reached fail the command within --timeout,
	// not after the first record's --delivery-timeout.
	pctx, cancel := cf.requestCtx(ctx)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		return c.fail(stderr, fmt.Errorf("no broker of %s answered within --timeout %v: %w", cf.brokers, cf.timeout, err))
	}
	if *partition >= 0 {
		// A partition the topic lacks is a usage error, said plainly (the
		// client's own is "invalid record partitioning choice").
		mctx, cancel := cf.requestCtx(ctx)
		tms, errs, err := fetchMetadata(mctx, cl, []string{topic})
		cancel()
		if err == nil && errs[topic] == nil && len(tms) == 1 && !slices.Contains(tms[0].partitions, *partition) {
			return c.fail(stderr, fmt.Errorf("topic %q has no partition %d (it has %d)", topic, *partition, len(tms[0].partitions)))
		}
	}

	var (
		wg       sync.WaitGroup
		acked    atomic.Int64
		failed   atomic.Int64
		firstErr struct {
			sync.Mutex
			err error
		}
	)
	promise := func(r *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			failed.Add(1)
			firstErr.Lock()
			if firstErr.err == nil {
				firstErr.err = err
			}
			firstErr.Unlock()
			return
		}
		acked.Add(1)
	}
	br := bufio.NewReaderSize(stdin, 64<<10)
	var sent int64
	var readErr error
	for ctx.Err() == nil {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(line, []byte{'\n'})
			line = bytes.TrimSuffix(line, []byte{'\r'})
			r := &kgo.Record{Topic: topic, Value: line, Headers: hdrs, Partition: *partition}
			switch {
			case *key != "":
				r.Key = []byte(*key)
			case *keySep != "":
				if k, v, ok := bytes.Cut(line, []byte(*keySep)); ok {
					r.Key, r.Value = k, v
				}
			}
			wg.Add(1)
			sent++
			cl.Produce(ctx, r, promise)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	// Flush waits for every buffered record; on ctx cancellation the records
	// still buffered fail through their promise.
	_ = cl.Flush(ctx)
	wg.Wait()
	if !*quiet {
		fmt.Fprintf(stderr, "produced %d records to %q (%d failed)\n", acked.Load(), topic, failed.Load())
	}
	switch {
	case readErr != nil:
		return c.fail(stderr, fmt.Errorf("read stdin: %w", readErr))
	case failed.Load() > 0:
		return c.fail(stderr, fmt.Errorf("%d of %d records failed, first error: %w", failed.Load(), sent, firstErr.err))
	case ctx.Err() != nil:
		return c.fail(stderr, ctx.Err())
	}
	return exitOK
}

// acksOpts maps --acks to franz-go options. acks 0 and 1 need idempotence
// off (Kafka requires acks=all for idempotent producers).
func acksOpts(s string) ([]kgo.Opt, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "none":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	case "1", "leader":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "-1", "all":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	default:
		return nil, usageErrorf("--acks %q: want 0, 1, -1 or all", s)
	}
}

// compressionOpt maps a codec name to franz-go's codec.
func compressionOpt(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	default:
		return kgo.NoCompression(), usageErrorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
	}
}

// parseHeaders turns key=value strings into record headers.
func parseHeaders(in []string) ([]kgo.RecordHeader, error) {
	var out []kgo.RecordHeader
	for _, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--header %q: want key=value", s)
		}
		out = append(out, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return out, nil
}
