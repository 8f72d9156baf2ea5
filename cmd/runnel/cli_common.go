package main

// Shared plumbing of the client-side subcommands (topic, produce, consume,
// status, bench): flag sets with uniform --help and usage-error handling, the
// --brokers flag and the franz-go client they all use. The commands speak
// only the Kafka protocol (kgo + kmsg), so they work against runnel and
// against Apache Kafka alike.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/kafka"
)

// Exit codes of the client commands.
const (
	exitOK    = 0 // success (also --help)
	exitError = 1 // the command ran and failed (broker error, I/O error, ...)
	exitUsage = 2 // bad flags or arguments
)

// defaultBrokers is used when neither --brokers nor RUNNEL_BROKERS is set.
const defaultBrokers = "127.0.0.1:9092"

// envBrokers names the environment variable that overrides defaultBrokers.
const envBrokers = "RUNNEL_BROKERS"

// errUsage marks errors that are the caller's fault (exit code 2).
var errUsage = errors.New("usage")

// usageErrorf returns an error wrapping errUsage.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// command describes one client subcommand for its flag set and help text.
type command struct {
	name    string // full name, e.g. "topic create"
	args    string // positional synopsis, e.g. "NAME"
	summary string // one line saying what it does
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints nothing by itself: parseArgs decides what goes where.
func (c command) newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("runnel "+c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	return fs
}

// printUsage writes the command's help text to w.
func (c command) printUsage(w io.Writer, fs *pflag.FlagSet) {
	synopsis := "runnel " + c.name + " [flags]"
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, c.summary)
	if flags := fs.FlagUsages(); flags != "" {
		fmt.Fprintf(w, "\nFlags:\n%s", flags)
	}
}

// parse parses args with fs. It returns done=true when the caller must return
// code right away: after --help (usage on stdout, 0) or a usage error (one
// line on stderr, 2).
func (c command) parse(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer) (done bool, code int) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return false, exitOK
	case errors.Is(err, pflag.ErrHelp):
		c.printUsage(stdout, fs)
		return true, exitOK
	default:
		return true, c.fail(stderr, usageErrorf("%v", err))
	}
}

// fail prints err as one line on stderr and returns the matching exit code.
func (c command) fail(stderr io.Writer, err error) int {
	if errors.Is(err, errUsage) {
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		fmt.Fprintf(stderr, "runnel %s: %s (see 'runnel %s --help')\n", c.name, msg, c.name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "runnel %s: %v\n", c.name, err)
	return exitError
}

// clientFlags are the connection flags every client command has.
type clientFlags struct {
	brokers string
	timeout time.Duration
	sec     clientSecurity // SASL and TLS (cli_security.go)

	fs       *pflag.FlagSet
	resolved bool // the environment and the client config file applied
}

// addClientFlags registers --brokers, --timeout and the SASL and TLS
// flags on fs.
func addClientFlags(fs *pflag.FlagSet) *clientFlags {
	cf := &clientFlags{fs: fs}
	def := os.Getenv(envBrokers)
	if def == "" {
		def = defaultBrokers
	}
	fs.StringVarP(&cf.brokers, "brokers", "b", def, "comma-separated Kafka bootstrap addresses (env "+envBrokers+")")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "how long to wait for the brokers to answer a request")
	addSecurityFlags(fs, &cf.sec)
	return cf
}

// seeds returns the non-empty, trimmed broker addresses.
func (cf *clientFlags) seeds() ([]string, error) {
	var out []string
	for _, s := range strings.Split(cf.brokers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, usageErrorf("--brokers is empty")
	}
	return out, nil
}

// newClient returns a franz-go client for the flags plus extra options.
func (cf *clientFlags) newClient(extra ...kgo.Opt) (*kgo.Client, error) {
	if !cf.resolved && cf.fs != nil {
		if err := cf.resolveClient(os.LookupEnv); err != nil {
			return nil, err
		}
		cf.resolved = true
	}
	seeds, err := cf.seeds()
	if err != nil {
		return nil, err
	}
	sec, err := cf.sec.securityOpts()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("runnel-cli"),
		kgo.RequestTimeoutOverhead(cf.timeout),
		kgo.DialTimeout(cf.timeout),
		kgo.RetryTimeout(cf.timeout),
		kgo.MetadataMinAge(250 * time.Millisecond),
		// Requests no larger than runnel's default limit (franz-go's
		// own is 100 MiB: a produce to many partitions could exceed it).
		kgo.BrokerMaxWriteBytes(kafka.DefaultMaxFrameBytes),
	}
	opts = append(opts, sec...)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return cl, nil
}

// requestCtx bounds one admin request by the --timeout.
func (cf *clientFlags) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cf.timeout)
}

// errorCodeErr turns a Kafka error code plus optional message into an error.
func errorCodeErr(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err == nil {
		return nil
	}
	if msg != nil && *msg != "" && *msg != err.Error() {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

// topicMeta is what the commands need from a Metadata response per topic.
type topicMeta struct {
	name       string
	id         [16]byte // topic ID (zero from servers without IDs)
	partitions []int32  // sorted
	leaders    map[int32]int32
	replicas   map[int32][]int32 // replica set, the origin first on a site
	isr        map[int32][]int32 // in-sync set
	internal   bool
}

// fetchMetadata asks for metadata of topics (all topics when empty) without
// creating any. Topics that do not exist are returned with their error.
func fetchMetadata(ctx context.Context, cl *kgo.Client, topics []string) ([]topicMeta, map[string]error, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if len(topics) == 0 {
		req.Topics = nil // all topics
	} else {
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: %w", err)
	}
	var out []topicMeta
	errs := map[string]error{}
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			errs[name] = err
			continue
		}
		tm := topicMeta{name: name, id: t.TopicID, leaders: map[int32]int32{}, replicas: map[int32][]int32{}, isr: map[int32][]int32{}, internal: t.IsInternal}
		for _, p := range t.Partitions {
			tm.partitions = append(tm.partitions, p.Partition)
			tm.leaders[p.Partition] = p.Leader
			tm.replicas[p.Partition] = p.Replicas
			tm.isr[p.Partition] = p.ISR
		}
		slices.Sort(tm.partitions)
		out = append(out, tm)
	}
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, errs, nil
}

// partitionOffsets holds the start and end offsets of one partition.
type partitionOffsets struct {
	start, end int64
	err        error
}

// listOffsets returns earliest and latest offsets for every partition of
// every topic in tms, using ListOffsets (timestamp -2 and -1).
func listOffsets(ctx context.Context, cl *kgo.Client, tms []topicMeta) (map[string]map[int32]*partitionOffsets, error) {
	out := map[string]map[int32]*partitionOffsets{}
	for _, tm := range tms {
		m := map[int32]*partitionOffsets{}
		for _, p := range tm.partitions {
			m[p] = &partitionOffsets{start: -1, end: -1}
		}
		out[tm.name] = m
	}
	for _, ts := range []int64{-2, -1} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		for _, tm := range tms {
			if len(tm.partitions) == 0 {
				continue
			}
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = tm.name
			for _, p := range tm.partitions {
				rp := kmsg.NewListOffsetsRequestTopicPartition()
				rp.Partition = p
				rp.Timestamp = ts
				rp.CurrentLeaderEpoch = -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		if len(req.Topics) == 0 {
			return out, nil
		}
		// The client splits the request by partition leader.
		shards := cl.RequestSharded(ctx, req)
		for _, sh := range shards {
			if sh.Err != nil {
				// A shard the client could not send (no leader for its
				// partitions: a site copy no alive box holds, an election)
				// fails those partitions only; the rest are still shown.
				req, ok := sh.Req.(*kmsg.ListOffsetsRequest)
				if !ok || sh.Req == nil {
					return nil, fmt.Errorf("list offsets: %w", sh.Err)
				}
				for _, t := range req.Topics {
					for _, p := range t.Partitions {
						if po := out[t.Topic][p.Partition]; po != nil && po.err == nil {
							po.err = sh.Err
						}
					}
				}
				continue
			}
			resp := sh.Resp.(*kmsg.ListOffsetsResponse)
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					po := out[t.Topic][p.Partition]
					if po == nil {
						continue
					}
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						po.err = err
						continue
					}
					if ts == -2 {
						po.start = p.Offset
					} else {
						po.end = p.Offset
					}
				}
			}
		}
	}
	return out, nil
}
