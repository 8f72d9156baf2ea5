package sitetest

// The upstream checker: what the central Kafka received from a site,
// judged per origin partition by the origin headers every forwarded
// record carries (runnel-node, runnel-topic, runnel-partition,
// runnel-offset). It reports, per origin partition:
//   - acknowledged origin offsets that never arrived (must be 0);
//   - raw duplicates: arrivals beyond the first of an origin offset
//     (at-least-once; bounded by the forwarding window);
//   - duplicates after dedup by the origin headers (must be 0): a record
//     that arrived under two origin identities (another node id, topic or
//     offset), found by its content; the scenarios write a unique value
//     per record, which this relies on;
//   - conflicts: one origin offset arriving with two different contents,
//     or with another value than the producer had acknowledged;
//   - order: per upstream partition, the first arrivals of an origin
//     partition's offsets must increase (resends may repeat older ones).
// Records without valid origin headers are counted apart.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/sync/forward"
)

// OriginPartition names a partition as the origin headers do: the origin
// node's id, its topic name and the partition.
type OriginPartition struct {
	Node      string
	Topic     string
	Partition int32
}

func (o OriginPartition) String() string {
	return o.Node + ":" + o.Topic + "/" + strconv.Itoa(int(o.Partition))
}

// UpstreamRecord is one record read from the upstream.
type UpstreamRecord struct {
	// Topic, Partition and Offset locate it upstream.
	Topic     string
	Partition int32
	Offset    int64
	// Origin and OriginOffset come from the origin headers; HasOrigin is
	// false when any is missing or malformed.
	Origin       OriginPartition
	OriginOffset int64
	HasOrigin    bool
	// Value is the SHA-256 of the value (compared with Acked); Content
	// that of the timestamp, key, value and every header but the origin
	// headers (what makes two arrivals the same record). runnel-epoch is
	// in Content: the origin's send and a survivor's of its copy carry the
	// same one, so a copy with another epoch shows as a conflict.
	Value   [32]byte
	Content [32]byte
}

// UpstreamRecordOf reads a consumed record.
func UpstreamRecordOf(r *kgo.Record) UpstreamRecord {
	u := UpstreamRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: sha256.Sum256(r.Value)}
	h := sha256.New()
	var b [8]byte
	put := func(p []byte) {
		n := len(p)
		if p == nil {
			n = -1
		}
		h.Write(strconv.AppendInt(b[:0], int64(n), 10))
		h.Write([]byte{0})
		h.Write(p)
	}
	h.Write(strconv.AppendInt(b[:0], r.Timestamp.UnixMilli(), 10))
	put(r.Key)
	put(r.Value)
	var node, topic, part, off string
	var have int
	for _, x := range r.Headers {
		switch x.Key {
		case forward.HeaderNode:
			node, have = string(x.Value), have|1
		case forward.HeaderTopic:
			topic, have = string(x.Value), have|2
		case forward.HeaderPartition:
			part, have = string(x.Value), have|4
		case forward.HeaderOffset:
			off, have = string(x.Value), have|8
		default:
			put([]byte(x.Key))
			put(x.Value)
		}
	}
	copy(u.Content[:], h.Sum(nil))
	p, err1 := strconv.ParseInt(part, 10, 32)
	o, err2 := strconv.ParseInt(off, 10, 64)
	if have == 15 && err1 == nil && err2 == nil && node != "" && topic != "" && p >= 0 && o >= 0 {
		u.Origin, u.OriginOffset, u.HasOrigin = OriginPartition{node, topic, int32(p)}, o, true
	}
	return u
}

// UpstreamPartition is the report on one origin partition.
type UpstreamPartition struct {
	Origin OriginPartition
	// Records arrived (raw), Unique distinct origin offsets among them.
	Records, Unique int
	// RawDuplicates = Records - Unique.
	RawDuplicates int
	// Acked is the number of acknowledged records checked, Missing those
	// that never arrived, as runs {first, last, count}.
	Acked       int
	Missing     int
	MissingRuns [][3]int64
	// DuplicateRuns are the origin offsets that arrived more than once,
	// as runs {first, last, count}.
	DuplicateRuns [][3]int64
	DedupDups     int // arrivals whose content also arrived under another origin identity
	Conflicts     int // origin offsets with two contents, or not the acknowledged value
	OutOfOrder    int // first arrivals below an earlier first arrival (per upstream partition)
	FirstProblem  string
}

// UpstreamReport is what CheckUpstream found.
type UpstreamReport struct {
	Partitions []UpstreamPartition // sorted by origin
	// NoOrigin counts records without valid origin headers.
	NoOrigin int
	// Totals over the partitions.
	Records, Unique, RawDuplicates, Missing, DedupDups, Conflicts, OutOfOrder int
}

// OK reports whether nothing acknowledged is missing, nothing arrived
// twice after dedup, no origin offset conflicts, order is kept and every
// record carries its origin (raw duplicates are allowed: at-least-once).
func (r *UpstreamReport) OK() bool {
	return r.Missing == 0 && r.DedupDups == 0 && r.Conflicts == 0 && r.OutOfOrder == 0 && r.NoOrigin == 0
}

// Partition returns the report on o (zero when nothing of it arrived and
// nothing was acknowledged).
func (r *UpstreamReport) Partition(o OriginPartition) UpstreamPartition {
	for _, p := range r.Partitions {
		if p.Origin == o {
			return p
		}
	}
	return UpstreamPartition{Origin: o}
}

func (r *UpstreamReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream: %d records, %d unique, %d raw duplicates, %d missing, %d duplicates after dedup, %d conflicts, %d out of order, %d without origin headers",
		r.Records, r.Unique, r.RawDuplicates, r.Missing, r.DedupDups, r.Conflicts, r.OutOfOrder, r.NoOrigin)
	for _, p := range r.Partitions {
		fmt.Fprintf(&b, "\n  %s: %d records, %d unique, %d raw duplicates, %d/%d acknowledged missing",
			p.Origin, p.Records, p.Unique, p.RawDuplicates, p.Missing, p.Acked)
		if len(p.DuplicateRuns) > 0 {
			fmt.Fprintf(&b, " (duplicated:")
			for i, d := range p.DuplicateRuns {
				if i == 5 {
					fmt.Fprintf(&b, " …")
					break
				}
				fmt.Fprintf(&b, " [%d..%d]", d[0], d[1])
			}
			fmt.Fprintf(&b, ")")
		}
		for i, m := range p.MissingRuns {
			if i == 5 {
				fmt.Fprintf(&b, " …")
				break
			}
			fmt.Fprintf(&b, " [%d..%d]", m[0], m[1])
		}
		if p.DedupDups+p.Conflicts+p.OutOfOrder > 0 {
			fmt.Fprintf(&b, ", %d duplicates after dedup, %d conflicts, %d out of order (first: %s)", p.DedupDups, p.Conflicts, p.OutOfOrder, p.FirstProblem)
		}
	}
	return b.String()
}

// CheckUpstream judges recs (every record read from the upstream topics)
// against acked, the records producers had acknowledged per origin
// partition (AcksUpstream converts an Acks).
func CheckUpstream(recs []UpstreamRecord, acked map[OriginPartition][]Acked) *UpstreamReport {
	rep := &UpstreamReport{}
	type arrival struct {
		content [32]byte
		value   [32]byte
	}
	type stream struct {
		topic     string
		partition int32
		origin    OriginPartition
	}
	sorted := append([]UpstreamRecord(nil), recs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	parts := map[OriginPartition]*UpstreamPartition{}
	dupOffs := map[OriginPartition][]int64{}
	seen := map[OriginPartition]map[int64]arrival{}
	last := map[stream]int64{}
	byContent := map[[32]byte]map[OriginPartition]map[int64]bool{}
	get := func(o OriginPartition) *UpstreamPartition {
		p := parts[o]
		if p == nil {
			p = &UpstreamPartition{Origin: o}
			parts[o] = p
			seen[o] = map[int64]arrival{}
		}
		return p
	}
	problem := func(p *UpstreamPartition, f string, args ...any) {
		if p.FirstProblem == "" {
			p.FirstProblem = fmt.Sprintf(f, args...)
		}
	}
	for _, r := range sorted {
		if !r.HasOrigin {
			rep.NoOrigin++
			continue
		}
		p := get(r.Origin)
		p.Records++
		prev, dup := seen[r.Origin][r.OriginOffset]
		if dup {
			dupOffs[r.Origin] = append(dupOffs[r.Origin], r.OriginOffset)
			if prev.content != r.Content {
				p.Conflicts++
				problem(p, "offset %d arrived with two contents (upstream %s/%d@%d)", r.OriginOffset, r.Topic, r.Partition, r.Offset)
			}
			continue
		}
		seen[r.Origin][r.OriginOffset] = arrival{content: r.Content, value: r.Value}
		ids := byContent[r.Content]
		if ids == nil {
			ids = map[OriginPartition]map[int64]bool{}
			byContent[r.Content] = ids
		}
		if ids[r.Origin] == nil {
			ids[r.Origin] = map[int64]bool{}
		}
		ids[r.Origin][r.OriginOffset] = true
		s := stream{r.Topic, r.Partition, r.Origin}
		if l, ok := last[s]; ok && r.OriginOffset < l {
			p.OutOfOrder++
			problem(p, "offset %d first arrived after %d (upstream %s/%d@%d)", r.OriginOffset, l, r.Topic, r.Partition, r.Offset)
		}
		last[s] = max(last[s], r.OriginOffset)
	}
	// One content under several origin identities: every identity but
	// the first (in name order) is a duplicate that dedup by the origin
	// headers cannot drop.
	for _, ids := range byContent {
		type ident struct {
			o   OriginPartition
			off int64
		}
		var all []ident
		for o, offs := range ids {
			for off := range offs {
				all = append(all, ident{o, off})
			}
		}
		if len(all) < 2 {
			continue
		}
		name := func(x ident) string { return x.o.String() + "@" + strconv.FormatInt(x.off, 10) }
		sort.Slice(all, func(i, j int) bool { return name(all[i]) < name(all[j]) })
		names := make([]string, len(all))
		for i, x := range all {
			names[i] = name(x)
		}
		for _, x := range all[1:] {
			p := parts[x.o]
			p.DedupDups++
			problem(p, "one record arrived as %s", strings.Join(names, ", "))
		}
	}
	for o, acks := range acked {
		p := get(o)
		p.Acked += len(acks)
		var missing []int64
		for _, a := range acks {
			got, ok := seen[o][a.Offset]
			switch {
			case !ok:
				missing = append(missing, a.Offset)
			case got.value != a.Value:
				p.Conflicts++
				problem(p, "acknowledged offset %d arrived with another value", a.Offset)
			}
		}
		p.Missing = len(missing)
		p.MissingRuns = runs(missing)
	}
	for _, p := range parts {
		p.Unique = len(seen[p.Origin])
		offs := slices.Compact(slices.Sorted(slices.Values(dupOffs[p.Origin])))
		p.DuplicateRuns = runs(offs)
		p.RawDuplicates = p.Records - p.Unique
		rep.Partitions = append(rep.Partitions, *p)
		rep.Records += p.Records
		rep.Unique += p.Unique
		rep.RawDuplicates += p.RawDuplicates
		rep.Missing += p.Missing
		rep.DedupDups += p.DedupDups
		rep.Conflicts += p.Conflicts
		rep.OutOfOrder += p.OutOfOrder
	}
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Origin.String() < rep.Partitions[j].Origin.String() })
	return rep
}

// AcksUpstream converts acks to origin partitions named as the origin
// headers name them: a node's id is its Name (pass --node-id n.Name).
func AcksUpstream(a *Acks) map[OriginPartition][]Acked {
	out := map[OriginPartition][]Acked{}
	for _, c := range a.Origins() {
		out[OriginPartition{Node: c.Node.Name, Topic: c.Topic, Partition: c.Partition}] = a.Of(c)
	}
	return out
}

// ReadUpstream reads every record of topics from the Kafka cluster at
// brokers, from each partition's start to the end it has when the read
// begins. A topic that does not exist reads as empty.
func ReadUpstream(ctx context.Context, brokers []string, topics ...string) ([]UpstreamRecord, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequestRetries(3), kgo.RetryTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends := map[string]map[int32]int64{}
	md := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(t)
		md.Topics = append(md.Topics, mt)
	}
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	for _, t := range mresp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				continue
			}
			return nil, fmt.Errorf("metadata %s: %w", *t.Topic, err)
		}
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = *t.Topic
		for _, p := range t.Partitions {
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition, lp.Timestamp = p.Partition, -1
			lt.Partitions = append(lt.Partitions, lp)
		}
		lo.Topics = append(lo.Topics, lt)
	}
	if len(lo.Topics) == 0 {
		return nil, nil
	}
	// Partitions have different leaders on a real cluster: the client
	// splits the request.
	for _, sh := range cl.RequestSharded(ctx, lo) {
		if sh.Err != nil {
			return nil, fmt.Errorf("list offsets: %w", sh.Err)
		}
		for _, t := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("list offsets %s/%d: %w", t.Topic, p.Partition, err)
				}
				if ends[t.Topic] == nil {
					ends[t.Topic] = map[int32]int64{}
				}
				ends[t.Topic][p.Partition] = p.Offset
			}
		}
	}
	want := map[string]map[int32]kgo.Offset{}
	left := 0
	for t, ps := range ends {
		for p, end := range ps {
			if end > 0 {
				if want[t] == nil {
					want[t] = map[int32]kgo.Offset{}
				}
				want[t][p] = kgo.NewOffset().AtStart()
				left++
			}
		}
	}
	if left == 0 {
		return nil, nil
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(want), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	var out []UpstreamRecord
	done := map[string]map[int32]bool{}
	for left > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return out, fmt.Errorf("read upstream: %d partitions not read to their end: %w", left, ctx.Err())
		}
		for _, e := range fs.Errors() {
			return out, fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end := ends[r.Topic][r.Partition]
			if r.Offset >= end {
				return
			}
			out = append(out, UpstreamRecordOf(r))
			if r.Offset == end-1 {
				if done[r.Topic] == nil {
					done[r.Topic] = map[int32]bool{}
				}
				if !done[r.Topic][r.Partition] {
					done[r.Topic][r.Partition] = true
					left--
				}
			}
		})
	}
	return out, nil
}

// CheckUpstreamUntil reads topics from brokers and checks them against
// acked until nothing acknowledged is missing or timeout passes, and
// returns the last report (the caller decides what else must hold).
func CheckUpstreamUntil(t testing.TB, timeout time.Duration, brokers []string, acked map[OriginPartition][]Acked, topics ...string) *UpstreamReport {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 10*time.Second))
		recs, err := ReadUpstream(ctx, brokers, topics...)
		cancel()
		if err == nil {
			rep := CheckUpstream(recs, acked)
			if rep.Missing == 0 || time.Now().After(deadline) {
				return rep
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("sitetest: read upstream: %v", err)
		}
		time.Sleep(time.Second)
	}
}
