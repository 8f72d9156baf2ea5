package sitetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// fetchBytes bounds one Fetch response partition.
const fetchBytes = 4 << 20

// maxFetches bounds the Fetch requests of one ReadLog.
const maxFetches = 100000

// ReadLog reads one copy of a partition from the Kafka listener at addr,
// with raw Fetch requests sent to that listener only (never redirected to
// the partition's leader as the Metadata names it): the batches from the
// log start offset to the high-water mark that ListOffsets reports at the
// start of the read, exactly as the copy serves them.
func ReadLog(ctx context.Context, addr, topic string, partition int32) (*Log, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MaxVersions(kversion.V3_0_0()),
		kgo.RequestRetries(2), kgo.DialTimeout(3*time.Second), kgo.RetryTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	br := cl.SeedBrokers()[0]
	l := &Log{Name: fmt.Sprintf("%s:%s/%d", addr, topic, partition)}
	if l.Start, err = listOffset(ctx, br, topic, partition, -2); err != nil {
		return nil, err
	}
	if l.End, err = listOffset(ctx, br, topic, partition, -1); err != nil {
		return nil, err
	}
	off := l.Start
	for range maxFetches {
		if off >= l.End {
			return l, nil
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 0
		req.MinBytes = 0
		req.MaxBytes = 2 * fetchBytes
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = partition
		rp.FetchOffset = off
		rp.PartitionMaxBytes = fetchBytes
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := br.RetriableRequest(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, off, err)
		}
		resp := kresp.(*kmsg.FetchResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, off, err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return nil, fmt.Errorf("fetch %s/%d at %d: response has %d topics", topic, partition, off, len(resp.Topics))
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, off, err)
		}
		bs, _, err := ParseBatches(p.RecordBatches)
		if err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, off, err)
		}
		progressed := false
		for _, b := range bs {
			if b.Base >= l.End {
				break
			}
			if len(l.Batches) > 0 && b.Base <= l.Batches[len(l.Batches)-1].Last {
				continue // already have it (a fetch may return the batch holding off)
			}
			b.Raw = append([]byte(nil), b.Raw...)
			l.Batches = append(l.Batches, b)
			off, progressed = b.Last+1, true
		}
		if !progressed {
			// Nothing at off although off < End: Compare reports the gap.
			return l, nil
		}
	}
	return l, fmt.Errorf("read %s/%d: more than %d fetches", topic, partition, maxFetches)
}

// listOffset asks br for the earliest (-2) or latest (-1) offset.
func listOffset(ctx context.Context, br *kgo.Broker, topic string, partition int32, ts int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := br.RetriableRequest(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("list offsets %s/%d: %w", topic, partition, err)
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, fmt.Errorf("list offsets %s/%d: response has %d topics", topic, partition, len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return 0, fmt.Errorf("list offsets %s/%d: %w", topic, partition, err)
	}
	return p.Offset, nil
}

// Copy names one stored copy of a partition: a topic partition on a node.
type Copy struct {
	Node      *Node
	Topic     string
	Partition int32
}

func (c Copy) String() string { return fmt.Sprintf("%s:%s/%d", c.Node.Name, c.Topic, c.Partition) }

// Identity is the mirror mapping of nodes that replicate nothing: an
// origin partition is its own only copy.
func Identity(Copy) []Copy { return nil }

// Acks collects the records producers had acknowledged, per origin
// partition. It is safe for concurrent use.
type Acks struct {
	mu sync.Mutex // guards m
	m  map[Copy][]Acked
}

// Add records r, acknowledged by origin (r.Topic, r.Partition, r.Offset
// and r.Value as the produce callback returns them).
func (a *Acks) Add(origin *Node, r *kgo.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[Copy][]Acked{}
	}
	k := Copy{Node: origin, Topic: r.Topic, Partition: r.Partition}
	a.m[k] = append(a.m[k], AckedValue(r.Offset, r.Value))
}

// Of returns the acknowledged records of one origin partition.
func (a *Acks) Of(origin Copy) []Acked {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Acked(nil), a.m[origin]...)
}

// Origins lists the origin partitions with acknowledged records.
func (a *Acks) Origins() []Copy {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := make([]Copy, 0, len(a.m))
	for c := range a.m {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].String() < cs[j].String() })
	return cs
}

// Len is the number of acknowledged records.
func (a *Acks) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, v := range a.m {
		n += len(v)
	}
	return n
}

// Check says what Cluster.Check verifies.
type Check struct {
	// Origins are the origin partitions to check; nil means every origin
	// partition in Acked.
	Origins []Copy
	// Mirrors maps an origin partition to its other copies (the mirrors'
	// naming is the replication's to decide); nil means Identity.
	Mirrors func(origin Copy) []Copy
	// Acked are the acknowledged records; nil checks none.
	Acked *Acks
	// AckedMin is how many of the copies read must hold each acknowledged
	// record; 0 means all of them.
	AckedMin int
}

// CopyInfo summarizes one copy read.
type CopyInfo struct {
	Copy       string
	Start, End int64
	Batches    int
	Records    int
}

// Report is the result of one Check.
type Report struct {
	Read    []CopyInfo
	Skipped []string // copies on nodes that were not running
	// NotHeld: mirror copies whose node answered NOT_LEADER_OR_FOLLOWER:
	// with more nodes than the replication factor a node lists every
	// partition of a peer's topic but holds only those placed on it.
	NotHeld  []string
	Problems []Problem
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxShown bounds the problems String lists.
const maxShown = 40

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems; copies read:", len(r.Problems))
	for _, c := range r.Read {
		fmt.Fprintf(&b, " %s[%d,%d) %d batches %d records;", c.Copy, c.Start, c.End, c.Batches, c.Records)
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, " skipped (not running): %s", strings.Join(r.Skipped, " "))
	}
	if len(r.NotHeld) > 0 {
		fmt.Fprintf(&b, " not held there: %s", strings.Join(r.NotHeld, " "))
	}
	for i, p := range r.Problems {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  … and %d more", len(r.Problems)-maxShown)
			break
		}
		fmt.Fprintf(&b, "\n  %s", p)
	}
	return b.String()
}

// Has reports whether the report holds a problem of kind k.
func (r *Report) Has(k Kind) bool {
	for _, p := range r.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// Check reads every copy of every origin partition over the Kafka protocol
// and compares them (see Compare and CheckAcked). Copies on nodes that are
// not running are skipped and listed in the report; a running node that
// cannot be read is a problem.
func (c *Cluster) Check(ctx context.Context, ch Check) *Report {
	rep := &Report{}
	origins := ch.Origins
	if origins == nil && ch.Acked != nil {
		origins = ch.Acked.Origins()
	}
	mirrorsOf := ch.Mirrors
	if mirrorsOf == nil {
		mirrorsOf = Identity
	}
	for _, o := range origins {
		read := func(cp Copy, mirror bool) *Log {
			if !cp.Node.Running() {
				rep.Skipped = append(rep.Skipped, cp.String())
				return nil
			}
			l, err := ReadLog(ctx, cp.Node.KafkaAddr(), cp.Topic, cp.Partition)
			if mirror && errors.Is(err, kerr.NotLeaderForPartition) {
				rep.NotHeld = append(rep.NotHeld, cp.String())
				return nil
			}
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Unreadable, cp.String(), -1, err.Error()})
				return nil
			}
			l.Name = cp.String()
			return l
		}
		origin := read(o, false)
		var mirrors, logs []*Log
		if origin != nil {
			logs = append(logs, origin)
		}
		for _, m := range mirrorsOf(o) {
			if l := read(m, true); l != nil {
				mirrors = append(mirrors, l)
				logs = append(logs, l)
			}
		}
		rep.Problems = append(rep.Problems, Compare(origin, mirrors)...)
		if ch.Acked != nil {
			rep.Problems = append(rep.Problems, CheckAcked(logs, ch.Acked.Of(o), ch.AckedMin)...)
		}
		for _, l := range logs {
			rep.Read = append(rep.Read, CopyInfo{Copy: l.Name, Start: l.Start, End: l.End, Batches: len(l.Batches), Records: len(l.records())})
		}
	}
	return rep
}

// CheckUntil runs Check until it finds no problem or timeout passes (copies
// converge asynchronously), and returns the last report.
func (c *Cluster) CheckUntil(t testing.TB, timeout time.Duration, ch Check) *Report {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 5*time.Second))
		rep := c.Check(ctx, ch)
		cancel()
		if rep.OK() || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(200 * time.Millisecond)
	}
}
