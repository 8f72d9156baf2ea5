package main

// runnel consume TOPIC: print records, directly from partitions or as a
// member of a consumer group.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var consumeCmd = command{
	name: "consume",
	args: "TOPIC",
	summary: `Print records of TOPIC, one per --format (default "%v\n"), until -n COUNT
records, the end of every partition (--exit) or Ctrl-C.

Without --group it reads partitions directly from --offset (default: latest;
--from-beginning means earliest). With --group it joins the consumer group,
resumes from the group's committed offsets (--offset applies to partitions
with none) and commits the offsets of the records it printed.

Format verbs: %k key, %v value, %t topic, %p partition, %o offset,
%T timestamp (ms), %h headers (k=v,...), %K key length, %S value length (-1 when null),
%% percent; escapes \n \t \r \\.`,
}

// runConsume implements `runnel consume TOPIC`.
func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := consumeCmd
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	fromBeginning := fs.Bool("from-beginning", false, "start at the earliest offset (same as --offset earliest)")
	group := fs.StringP("group", "g", "", "consume as a member of this consumer group and commit offsets")
	offset := fs.StringP("offset", "o", "", "start offset: earliest, latest, N (absolute) or -N (N before the end)")
	count := fs.IntP("count", "n", 0, "exit after COUNT records (0: no limit)")
	partition := fs.Int32P("partition", "p", -1, "read only this partition (not with --group)")
	format := fs.StringP("format", "f", `%v\n`, "output format per record (see above)")
	exitAtEnd := fs.BoolP("exit", "e", false, "exit when the end of every partition (as of start) is reached")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.fail(stderr, usageErrorf("want exactly one TOPIC, got %d arguments", fs.NArg()))
	}
	topic := fs.Arg(0)
	if *count < 0 {
		return c.fail(stderr, usageErrorf("-n must be >= 0, got %d", *count))
	}
	if *group != "" && *partition >= 0 {
		return c.fail(stderr, usageErrorf("--partition cannot be used with --group"))
	}
	if *partition < -1 {
		return c.fail(stderr, usageErrorf("--partition must be >= 0, got %d", *partition))
	}
	if *fromBeginning && *offset != "" && *offset != "earliest" {
		return c.fail(stderr, usageErrorf("--from-beginning conflicts with --offset %s", *offset))
	}
	if *fromBeginning {
		*offset = "earliest"
	}
	start, err := parseStartOffset(*offset)
	if err != nil {
		return c.fail(stderr, err)
	}
	fmtr, err := parseFormat(*format)
	if err != nil {
		return c.fail(stderr, err)
	}
	tm, ends, err := consumeTarget(ctx, cf, topic, *partition, *group, start, *exitAtEnd)
	if err != nil {
		return c.fail(stderr, err)
	}
	var at map[int32]int64
	if *group == "" && !start.earliest && !start.latest {
		if at, err = clampStart(ctx, cf, tm, start, stderr); err != nil {
			return c.fail(stderr, err)
		}
	}
	cl, err := cf.newClient(consumeOpts(tm, *group, start, at)...)
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close() // leaves the group after the final commit below
	pr := &consumePrinter{c: c, cl: cl, stderr: stderr, fmtr: fmtr, group: *group != "", count: *count, ends: ends}
	code := pr.run(ctx, stdout)
	if *group != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cf.timeout)
		if err := cl.CommitMarkedOffsets(cctx); err != nil && code == exitOK {
			code = c.fail(stderr, fmt.Errorf("commit offsets: %w", err))
		}
		cancel()
	}
	return code
}

// consumeTarget finds the partitions of topic to read (and, for --exit,
// the ends) before consuming, so a missing topic or partition is an error
// rather than an endless wait.
func consumeTarget(ctx context.Context, cf *clientFlags, topic string, partition int32, group string, start startOffset, exitAtEnd bool) (topicMeta, *endTracker, error) {
	admin, err := cf.newClient()
	if err != nil {
		return topicMeta{}, nil, err
	}
	defer admin.Close()
	rctx, cancel := cf.requestCtx(ctx)
	tms, errs, err := fetchMetadata(rctx, admin, []string{topic})
	cancel()
	if err == nil && errs[topic] != nil {
		err = fmt.Errorf("topic %q: %w", topic, errs[topic])
	}
	if err == nil && len(tms) != 1 {
		err = fmt.Errorf("topic %q: not in the metadata answer", topic)
	}
	if err != nil {
		return topicMeta{}, nil, err
	}
	tm := tms[0]
	if partition >= 0 {
		if _, ok := tm.leaders[partition]; !ok {
			return topicMeta{}, nil, fmt.Errorf("topic %q has no partition %d (it has %d)", topic, partition, len(tm.partitions))
		}
		tm.partitions = []int32{partition}
	}
	if !exitAtEnd {
		return tm, nil, nil
	}
	ends, err := newEndTracker(ctx, cf, admin, tm, group, start)
	return tm, ends, err
}

// clampStart resolves an absolute --offset per partition of tm: one past
// the partition's end reads from the end (what arrives next), one before
// its start (removed by retention) from the start, each with a warning on
// stderr. Without it the client's reset would start a partition at its
// beginning whatever the offset.
func clampStart(ctx context.Context, cf *clientFlags, tm topicMeta, start startOffset, stderr io.Writer) (map[int32]int64, error) {
	cl, err := cf.newClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	offs, err := listOffsets(rctx, cl, []topicMeta{tm})
	if err != nil {
		return nil, err
	}
	at := map[int32]int64{}
	for _, p := range tm.partitions {
		po := offs[tm.name][p]
		if po == nil || po.err != nil {
			continue // the client's own reset decides
		}
		at[p] = start.resolve(po.start, po.end)
		switch {
		case start.at > po.end:
			fmt.Fprintf(stderr, "warning: %s/%d: offset %d is past the end (%d): reading what arrives from %d\n", tm.name, p, start.at, po.end, po.end)
		case start.at < po.start:
			fmt.Fprintf(stderr, "warning: %s/%d: offset %d is before the first one kept (%d): reading from %d\n", tm.name, p, start.at, po.start, po.start)
		}
	}
	return at, nil
}

// consumeOpts are the client options of a consume: a group member that
// commits what it printed, or a reader of the given partitions (from
// at[p] when given, else from start).
func consumeOpts(tm topicMeta, group string, start startOffset, at map[int32]int64) []kgo.Opt {
	opts := []kgo.Opt{kgo.FetchMaxWait(500 * time.Millisecond)}
	if group != "" {
		return append(opts,
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(tm.name),
			kgo.ConsumeResetOffset(start.kgo()),
			kgo.AutoCommitMarks(),
			kgo.AutoCommitInterval(time.Second),
		)
	}
	ps := map[int32]kgo.Offset{}
	for _, p := range tm.partitions {
		ps[p] = start.kgo()
		if o, ok := at[p]; ok {
			ps[p] = kgo.NewOffset().At(o)
		}
	}
	return append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{tm.name: ps}))
}

// consumePrinter prints the records a consume polls until the count, the
// ends (--exit), a fatal fetch error or the context stops it.
type consumePrinter struct {
	c      command
	cl     *kgo.Client
	stderr io.Writer
	fmtr   recordFormat
	group  bool // mark printed records for commit
	count  int
	ends   *endTracker
}

// run prints and returns the exit code.
func (pr *consumePrinter) run(ctx context.Context, stdout io.Writer) int {
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	var buf []byte
	printed := 0
	code := exitOK
loop:
	for {
		if pr.ends != nil && pr.ends.done() {
			break
		}
		fetches := pr.cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			break
		}
		if pr.fatal(fetches) {
			code = exitError
			break
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			buf = pr.fmtr.append(buf[:0], r)
			if _, err := out.Write(buf); err != nil {
				code = pr.c.fail(pr.stderr, fmt.Errorf("write output: %w", err))
				break loop
			}
			if pr.group {
				pr.cl.MarkCommitRecords(r)
			}
			if pr.ends != nil {
				pr.ends.seen(r.Partition, r.Offset)
			}
			printed++
			if pr.count > 0 && printed >= pr.count {
				break loop
			}
		}
		if err := out.Flush(); err != nil {
			code = pr.c.fail(pr.stderr, fmt.Errorf("write output: %w", err))
			break
		}
	}
	if err := out.Flush(); err != nil && code == exitOK {
		code = pr.c.fail(pr.stderr, fmt.Errorf("write output: %w", err))
	}
	return code
}

// fatal reports the fetch errors of a poll and whether one of them ends
// the consume (one that is not retriable).
func (pr *consumePrinter) fatal(fetches kgo.Fetches) bool {
	var fetchErr error
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		fmt.Fprintf(pr.stderr, "runnel consume: topic %q partition %d: %v\n", t, p, err)
		if !kerr.IsRetriable(err) && fetchErr == nil {
			fetchErr = err
		}
	})
	return fetchErr != nil
}

// startOffset is a parsed --offset: earliest, latest (minus back records)
// or an absolute offset.
type startOffset struct {
	earliest bool
	latest   bool
	back     int64 // with latest: start this many records before the end
	at       int64 // absolute offset when neither earliest nor latest
}

// parseStartOffset parses --offset.
func parseStartOffset(s string) (startOffset, error) {
	switch s = strings.TrimSpace(strings.ToLower(s)); s {
	case "", "latest", "end":
		return startOffset{latest: true}, nil
	case "earliest", "beginning", "start":
		return startOffset{earliest: true}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return startOffset{}, usageErrorf("--offset %q: want earliest, latest, N or -N", s)
	}
	if n < 0 {
		return startOffset{latest: true, back: -n}, nil
	}
	return startOffset{at: n}, nil
}

// kgo returns the franz-go offset for o.
func (o startOffset) kgo() kgo.Offset {
	switch {
	case o.earliest:
		return kgo.NewOffset().AtStart()
	case o.latest:
		return kgo.NewOffset().AtEnd().Relative(-o.back)
	default:
		return kgo.NewOffset().At(o.at)
	}
}

// resolve returns the absolute offset o means for a partition whose records
// span [start, end).
func (o startOffset) resolve(start, end int64) int64 {
	switch {
	case o.earliest:
		return start
	case o.latest:
		return max(start, end-o.back)
	default:
		return min(max(o.at, start), end)
	}
}

// endTracker knows, per partition, the end offset at start and the next
// offset to be printed, so --exit can stop at the end.
type endTracker struct {
	end  map[int32]int64 // end offset when the command started
	next map[int32]int64 // next offset we will print
}

func newEndTracker(ctx context.Context, cf *clientFlags, cl *kgo.Client, tm topicMeta, group string, start startOffset) (*endTracker, error) {
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	offs, err := listOffsets(rctx, cl, []topicMeta{tm})
	if err != nil {
		return nil, err
	}
	committed := map[int32]int64{}
	if group != "" {
		if committed, err = fetchCommitted(rctx, cl, group, tm); err != nil {
			return nil, err
		}
	}
	et := &endTracker{end: map[int32]int64{}, next: map[int32]int64{}}
	for _, p := range tm.partitions {
		po := offs[tm.name][p]
		if po == nil {
			return nil, fmt.Errorf("no offsets for partition %d", p)
		}
		if po.err != nil {
			return nil, fmt.Errorf("offsets of partition %d: %w", p, po.err)
		}
		et.end[p] = po.end
		if c, ok := committed[p]; ok && c >= 0 {
			et.next[p] = c
			continue
		}
		et.next[p] = start.resolve(po.start, po.end)
	}
	return et, nil
}

func (et *endTracker) seen(p int32, off int64) {
	if off+1 > et.next[p] {
		et.next[p] = off + 1
	}
}

func (et *endTracker) done() bool {
	for p, end := range et.end {
		if et.next[p] < end {
			return false
		}
	}
	return true
}

// fetchCommitted returns the group's committed offsets for the topic. The
// request is filled in both shapes (v0-7: one group; v8+: groups, with the
// topic named by name up to v9 and by ID from v10).
func fetchCommitted(ctx context.Context, cl *kgo.Client, group string, tm topicMeta) (map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = tm.name
	rt.Partitions = tm.partitions
	req.Topics = append(req.Topics, rt)
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rgt := kmsg.NewOffsetFetchRequestGroupTopic()
	rgt.Topic = tm.name
	rgt.TopicID = tm.id
	rgt.Partitions = tm.partitions
	rg.Topics = append(rg.Topics, rgt)
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	out := map[int32]int64{}
	add := func(p int32, off int64, code int16) {
		if kerr.ErrorForCode(code) == nil && off >= 0 {
			out[p] = off
		}
	}
	if resp.Version < 8 {
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, fmt.Errorf("offset fetch: %w", err)
		}
		for _, t := range resp.Topics {
			if t.Topic == tm.name {
				for _, p := range t.Partitions {
					add(p.Partition, p.Offset, p.ErrorCode)
				}
			}
		}
		return out, nil
	}
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return nil, fmt.Errorf("offset fetch: %w", err)
		}
		for _, t := range g.Topics {
			if t.Topic == tm.name || (t.TopicID != [16]byte{} && t.TopicID == tm.id) {
				for _, p := range t.Partitions {
					add(p.Partition, p.Offset, p.ErrorCode)
				}
			}
		}
	}
	return out, nil
}
