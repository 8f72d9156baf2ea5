package mqtt

import (
	"errors"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

const (
	// publishOrigin is the origin (client id) of records fanned out from the log.
	publishOrigin = "runnel-log"
	// publishReadBytes bounds one Read of a partition.
	publishReadBytes = 1 << 20
	// publishRetry is when a partition whose read failed is tried again.
	publishRetry = time.Second
)

// publisher follows the log topics of the Publish routes and fans new
// records out to MQTT subscribers.
type publisher struct {
	b      *Broker
	routes []PublishRoute
	next   []map[int32]int64 // per route: partition → next offset
}

// startPublishers starts the fan-out goroutine when Publish routes exist.
// Records already in the log when the broker starts are not published.
func (b *Broker) startPublishers() error {
	if len(b.opts.Publish) == 0 {
		return nil
	}
	p := &publisher{b: b, routes: b.opts.Publish}
	for _, r := range p.routes {
		m := map[int32]int64{}
		if info, err := b.opts.Log.Topic(r.Topic); err == nil {
			for _, pi := range info.Partitions {
				m[pi.Partition] = pi.HWM
			}
		} else if !errors.Is(err, log.ErrUnknownTopic) {
			return err
		}
		p.next = append(p.next, m)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		p.run()
	}()
	return nil
}

// run publishes what is new, then waits for the log to signal a change in
// the routes' partitions or topics (log.Watch, log.WatchTopics): an idle
// log costs no wakeup. A partition whose read failed is retried after
// publishRetry.
func (p *publisher) run() {
	w := log.NewWaiter()
	for {
		w.Reset()
		p.b.opts.Log.WatchTopics(w) // first: a topic created during the scan wakes the wait
		failed := false
		for i := range p.routes {
			if !p.scan(i, w) {
				failed = true
			}
		}
		var retry <-chan time.Time
		var t *time.Timer
		if failed {
			t = time.NewTimer(publishRetry)
			retry = t.C
		}
		select {
		case <-w.C():
		case <-retry:
		case <-p.b.closing:
		}
		if t != nil {
			t.Stop()
		}
		select {
		case <-p.b.closing:
			return
		default:
		}
	}
}

// scan publishes everything new in one route's topic and watches each of
// its partitions past what it published; false when a read failed.
func (p *publisher) scan(i int, w *log.Waiter) bool {
	r := &p.routes[i]
	info, err := p.b.opts.Log.Topic(r.Topic)
	if err != nil {
		return true // not created yet (or deleted): WatchTopics wakes the wait
	}
	ok := true
	for _, pi := range info.Partitions {
		next, ok := p.next[i][pi.Partition]
		if !ok {
			next = pi.Start // a partition (or topic) born after start: all of it
		}
		failed := false
		for next < pi.HWM {
			select {
			case <-p.b.closing:
				return true
			default:
			}
			data, err := p.b.opts.Log.Read(r.Topic, pi.Partition, next, publishReadBytes)
			if errors.Is(err, log.ErrOffsetOutOfRange) {
				start, _, oerr := p.b.opts.Log.Offsets(r.Topic, pi.Partition)
				if oerr != nil || start <= next {
					failed = true
					break
				}
				p.b.log.Warn("mqtt: publish route skipped records removed by retention", "route", r.Topic, "partition", pi.Partition, "offset", next, "start", start)
				next = start
				continue
			}
			if err != nil || len(data) == 0 {
				if err != nil {
					p.b.log.Warn("mqtt: publish route read", "topic", r.Topic, "partition", pi.Partition, "offset", next, "error", err)
				}
				failed = true
				break
			}
			next = p.publishBatches(r, data, next)
		}
		p.next[i][pi.Partition] = next
		if failed {
			ok = false // retried after publishRetry, not watched (it would wake at once)
		} else if err := p.b.opts.Log.Watch(w, r.Topic, pi.Partition, next); err != nil {
			ok = false
		}
	}
	return ok
}

// publishBatches publishes the records at or after next in data and
// returns the new next offset.
func (p *publisher) publishBatches(r *PublishRoute, data []byte, next int64) int64 {
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			p.b.log.Warn("mqtt: publish route: bad batch", "topic", r.Topic, "offset", next, "error", err)
			return next + 1
		}
		recs, err := batch.Records(data[:h.Size()])
		if err != nil {
			p.b.log.Warn("mqtt: publish route: undecodable batch", "topic", r.Topic, "offset", h.BaseOffset, "error", err)
		}
		for _, rec := range recs {
			if rec.Offset < next {
				continue
			}
			p.publish(r, &rec)
		}
		if lo := h.LastOffset() + 1; lo > next {
			next = lo
		}
		data = data[h.Size():]
	}
	return next
}

func (p *publisher) publish(r *PublishRoute, rec *batch.Record) {
	var user []packets.UserProperty
	for _, h := range rec.Headers {
		if h.Key == HeaderTopic {
			return // came in over MQTT: subscribers already had it
		}
		user = append(user, packets.UserProperty{Key: h.Key, Val: string(h.Value)})
	}
	topic := r.Prefix
	if t := strings.TrimSuffix(topic, "/"); t != "" {
		topic = t // "cmd/" is "cmd": keys go to cmd/K, not cmd//K
	}
	if len(rec.Key) > 0 {
		topic += "/" + strings.NewReplacer("+", "_", "#", "_").Replace(string(rec.Key))
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: r.QoS},
		TopicName:   topic,
		Payload:     rec.Value,
		Origin:      publishOrigin,
		Created:     time.Now().Unix(),
		Properties:  packets.Properties{User: user},
	}
	if r.QoS > 0 {
		pk.PacketID = 1 // required by validation; the inline client never acks
	}
	p.b.fanout(pk)
	p.b.stats.fannedOut.Add(1)
}
