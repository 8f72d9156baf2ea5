package replicate

import (
	"context"
	"fmt"
	"strings"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// view is the log.Log ingest, consumers, the forwarder and HTTP see on a
// replicating node. It is the node's log with five differences:
//
//   - AppendAsyncAll (log.AllAppender): Kafka acks=-1, acknowledged once
//     every in-sync copy holds the batch;
//   - mirrors (topics another node writes) cannot be created, deleted,
//     reconfigured or appended to through it (ErrNotLeader): only the
//     mirror fetcher, which holds the log itself, writes them;
//   - a local topic whose name would read as another node's mirror
//     ("<node id>.<topic>" for a known node) is refused (ErrInvalidTopic);
//   - for topics with min.insync.replicas > 1, readers see up to the
//     acknowledged end (durable on that many copies), so nothing consumed
//     or forwarded upstream can disappear with one box;
//   - a partition of a copy this node does not hold cannot be read
//     (ErrNotLeader: Kafka's NOT_LEADER_OR_FOLLOWER), see held.go.
type view struct {
	log.Log
	r *Replicator
}

func newView(r *Replicator) *view {
	return &view{Log: r.inner, r: r}
}

// Watch implements log.Log: w is signalled once the visible end passes
// after. For a topic that needs more than one copy that is the later of
// the log's HWM and the acknowledged end: w waits on the one still at or
// below after (the other, already past, would signal at once and again).
func (v *view) Watch(w *log.Waiter, topic string, partition int32, after int64) error {
	info, err := v.Log.Topic(topic)
	if err != nil {
		return err
	}
	if info.Config.Origin != "" || info.Config.MinInsyncReplicas <= 1 {
		return v.Log.Watch(w, topic, partition, after)
	}
	_, hwm, err := v.Log.Offsets(topic, partition)
	if err != nil {
		return err
	}
	if hwm <= after {
		return v.Log.Watch(w, topic, partition, after)
	}
	v.r.origin.watchAcked(w, topic, partition, after)
	return nil
}

func (v *view) mirror(topic string) (string, bool) {
	info, err := v.Log.Topic(topic)
	if err != nil || info.Config.Origin == "" {
		return "", false
	}
	return info.Config.Origin, true
}

func notLeader(topic, origin string) error {
	return fmt.Errorf("%w: %s is node %s's data (read-only here)", log.ErrNotLeader, topic, origin)
}

// CreateTopic implements log.Log.
func (v *view) CreateTopic(name string, cfg log.TopicConfig) error {
	if cfg.Origin != "" {
		return fmt.Errorf("%w: mirrors are made by replication only", log.ErrInvalidConfig)
	}
	if node, _, ok := strings.Cut(name, "."); ok && v.r.knownNode(node) {
		return fmt.Errorf("%w: %q reads as node %s's mirror of %q (names <node id>.<topic> are reserved for mirrors)", log.ErrInvalidTopic, name, node, name[len(node)+1:])
	}
	return v.Log.CreateTopic(name, cfg)
}

// DeleteTopic implements log.Log.
func (v *view) DeleteTopic(name string) error {
	if o, ok := v.mirror(name); ok {
		return notLeader(name, o)
	}
	err := v.Log.DeleteTopic(name)
	if err == nil {
		v.r.origin.forget(name)
	}
	return err
}

// AddPartitions implements log.Log.
func (v *view) AddPartitions(name string, total int32) error {
	if o, ok := v.mirror(name); ok {
		return notLeader(name, o)
	}
	return v.Log.AddPartitions(name, total)
}

// SetTopicConfig implements log.Log.
func (v *view) SetTopicConfig(name string, cfg log.TopicConfig) error {
	if o, ok := v.mirror(name); ok {
		return notLeader(name, o)
	}
	return v.Log.SetTopicConfig(name, cfg)
}

// AppendAt implements log.Log: never on a mirror through the view.
func (v *view) AppendAt(ctx context.Context, topic string, partition int32, batches []byte) error {
	if o, ok := v.mirror(topic); ok {
		return notLeader(topic, o)
	}
	if v.r.restoring.Load() {
		return errRestoring
	}
	return v.Log.AppendAt(ctx, topic, partition, batches)
}

// errRestoring answers appends while the start's taking back from the
// site's copies runs (see restore.go).
var errRestoring = fmt.Errorf("%w: this box is taking back its partitions from the site's copies; retry", log.ErrNotLeader)

// Append implements log.Log (refused while restoring).
func (v *view) Append(ctx context.Context, topic string, partition int32, batches []byte) (int64, error) {
	if v.r.restoring.Load() {
		return -1, errRestoring
	}
	return v.Log.Append(ctx, topic, partition, batches)
}

// AppendAsync implements log.Log (refused while restoring).
func (v *view) AppendAsync(topic string, partition int32, batches []byte, done func(int64, error)) {
	if v.r.restoring.Load() {
		if done != nil {
			done(-1, errRestoring)
		}
		return
	}
	v.Log.AppendAsync(topic, partition, batches, done)
}

// AppendAsyncAll implements log.AllAppender.
func (v *view) AppendAsyncAll(topic string, partition int32, batches []byte, done func(int64, error)) {
	if done == nil {
		done = func(int64, error) {}
	}
	if v.r.restoring.Load() {
		done(-1, errRestoring)
		return
	}
	v.r.origin.appendAll(topic, partition, batches, done)
}

// visible returns the end readers of a partition see: the log's HWM, or
// the acknowledged end for topics that need more than one copy.
func (v *view) visible(topic string, partition int32, hwm int64, cfg log.TopicConfig) int64 {
	if cfg.Origin != "" || cfg.MinInsyncReplicas <= 1 {
		return hwm
	}
	acked := v.r.origin.ackedEnd(topic, partition)
	return min(hwm, acked)
}

// Offsets implements log.Log. A partition of a copy this node does not
// hold answers ErrNotLeader (see held.go).
func (v *view) Offsets(topic string, partition int32) (int64, int64, error) {
	start, hwm, err := v.Log.Offsets(topic, partition)
	if err != nil {
		return start, hwm, err
	}
	info, err := v.Log.Topic(topic)
	if err != nil {
		return start, hwm, nil
	}
	if o := info.Config.Origin; o != "" && !v.r.held.holds(topic, partition) {
		return 0, 0, notHeld(topic, partition, o)
	}
	return start, max(start, v.visible(topic, partition, hwm, info.Config)), nil
}

// OffsetForTime implements log.Log (ErrNotLeader as Offsets).
func (v *view) OffsetForTime(topic string, partition int32, ts int64) (int64, error) {
	if o, ok := v.mirror(topic); ok && !v.r.held.holds(topic, partition) {
		return 0, notHeld(topic, partition, o)
	}
	return v.Log.OffsetForTime(topic, partition, ts)
}

// Read implements log.Log, stopping at the visible end.
func (v *view) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	start, end, err := v.Offsets(topic, partition)
	if err != nil {
		return nil, err
	}
	if offset == end {
		return nil, nil
	}
	if offset > end || offset < start {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", log.ErrOffsetOutOfRange, offset, start, end)
	}
	data, err := v.Log.Read(topic, partition, offset, maxBytes)
	if err != nil {
		return data, err
	}
	return cutAt(data, end), nil
}

// cutAt drops the batches of data that start at or after end.
func cutAt(data []byte, end int64) []byte {
	b := data
	n := 0
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) || h.BaseOffset >= end {
			break
		}
		n += h.Size()
		b = b[h.Size():]
	}
	return data[:n]
}

// Topic implements log.Log with visible ends.
func (v *view) Topic(name string) (log.TopicInfo, error) {
	info, err := v.Log.Topic(name)
	if err != nil {
		return info, err
	}
	v.clamp(&info)
	return info, nil
}

// Topics implements log.Log with visible ends.
func (v *view) Topics() []log.TopicInfo {
	ts := v.Log.Topics()
	for i := range ts {
		v.clamp(&ts[i])
	}
	return ts
}

func (v *view) clamp(info *log.TopicInfo) {
	for i := range info.Partitions {
		p := &info.Partitions[i]
		p.HWM = max(p.Start, v.visible(info.Name, p.Partition, p.HWM, info.Config))
	}
}

// ProducerIDFloor implements log.ProducerIDFloor: unknown while the
// start's restore runs (the batches it brings back carry the producer ids
// this box handed out before it lost its data and its id counter), then
// the log's.
func (v *view) ProducerIDFloor() (int64, error) {
	if v.r.restoring.Load() {
		return 0, errRestoring
	}
	if f, ok := v.Log.(log.ProducerIDFloor); ok {
		return f.ProducerIDFloor()
	}
	return 0, nil
}
