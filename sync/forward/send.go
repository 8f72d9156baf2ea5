package forward

// Sending: reading the log, building Records, handing them to the sink.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// room is how many more records and bytes may be sent now.
func (r *route) roomLocked() (int, int64) {
	if r.probing {
		if r.inflight > 0 {
			return 0, 0
		}
		return 1, r.cfg.MaxInFlightBytes
	}
	return int(int64(r.cfg.MaxInFlight) - r.span), r.cfg.MaxInFlightBytes - r.inflightB
}

// pump reads and sends at most one chunk per partition; it returns the
// number of records sent.
func (r *route) pump(ctx context.Context, sink Sink) int {
	r.mu.Lock()
	// Start after the partition served first last time, so a small window
	// is shared by every partition.
	n := len(r.order)
	parts := make([]*part, 0, n)
	for i := range n {
		parts = append(parts, r.order[(r.rr+i)%n])
	}
	if n > 0 {
		r.rr = (r.rr + 1) % n
	}
	r.mu.Unlock()
	total := 0
	for _, p := range parts {
		if ctx.Err() != nil {
			return total
		}
		r.mu.Lock()
		failed := r.failed
		roomN, roomB := r.roomLocked()
		next, gone := p.next, p.gone || p.duty.stopping
		r.mu.Unlock()
		if failed {
			return total
		}
		if roomN <= 0 || roomB <= 0 {
			r.maybeFlush(false)
			return total
		}
		if gone {
			continue
		}
		r.mu.Lock()
		wait := !p.readRetry.IsZero() && time.Now().Before(p.readRetry)
		r.mu.Unlock()
		if wait {
			continue
		}
		// A fair share of the window, so one partition's backlog does not
		// starve the others.
		share := max(roomN/len(parts), min(roomN, 64))
		total += r.sendChunk(ctx, sink, p, next, share, roomB)
	}
	return total
}

// sendChunk reads from next and sends up to roomN records / roomB bytes.
func (r *route) sendChunk(ctx context.Context, sink Sink, p *part, next int64, roomN int, roomB int64) int {
	lg := r.f.opts.Log
	r.mu.Lock()
	gen := p.gen
	r.mu.Unlock()
	maxRead := min(r.cfg.ReadBytes, int(min(roomB, 1<<30)))
	if r.lim != nil {
		// Under a bandwidth cap take about what the cap passes in 100 ms,
		// so partitions and higher-priority routes get their turn soon.
		maxRead = min(maxRead, max(r.lim.chunk(), 4096))
	}
	data, err := lg.Read(p.topic, p.part, next, max(maxRead, 1))
	if err != nil {
		r.readError(p, next, err)
		return 0
	}
	if len(data) == 0 {
		return 0
	}
	r.mu.Lock()
	p.readFails, p.readRetry = 0, time.Time{}
	r.mu.Unlock()
	var recs []*Record
	var sizes []int32
	var sl slab
	var bytes int64
	end := next
	tf := txnFilter{lg: lg, topic: p.topic, part: p.part, from: next}
	for len(data) >= batch.HeaderSize && len(recs) < roomN {
		h, err := batch.ParseHeader(data)
		if err != nil && len(recs) == 0 && end == next {
			r.readError(p, next, fmt.Errorf("parse batch: %w", err))
			return 0
		}
		if err != nil || h.Size() > len(data) {
			break
		}
		if h.LastOffset() < end {
			data = data[h.Size():]
			continue
		}
		if skip, stop, err := tf.check(&h); err != nil {
			if len(recs) == 0 && end == next {
				r.readError(p, next, err)
				return 0
			}
			break
		} else if stop {
			break // an open transaction: its end moves the HWM and wakes the route
		} else if skip {
			end = max(end, h.LastOffset()+1)
			data = data[h.Size():]
			continue
		}
		rs, err := batch.Records(data[:h.Size()])
		if errors.Is(err, batch.ErrRecord) {
			// The batch passed its CRC but its records cannot be decoded
			// (a broken producer, a decompression bomb). Waiting will not
			// fix it and would hold back everything behind it: skip it,
			// count its records as not forwarded, and say so. It stays
			// in the local log for inspection (runnel consume).
			r.skipUndecodable(p, h, end, err)
			end = max(end, h.LastOffset()+1)
			data = data[h.Size():]
			continue
		}
		if err != nil {
			r.readError(p, next, err)
			return 0
		}
		full := false
		for i := range rs {
			br := &rs[i]
			if br.Offset < end {
				continue
			}
			if len(recs) >= roomN || (len(recs) > 0 && (bytes >= roomB || bytes >= int64(maxRead))) {
				full = true
				break
			}
			rec := r.toRecord(p, br, h.LeaderEpoch, gen, &sl)
			sz := rec.Size()
			recs = append(recs, rec)
			sizes = append(sizes, int32(sz))
			bytes += int64(sz)
			end = br.Offset + 1
		}
		if full {
			break
		}
		// Control batches and records skipped above still move us on.
		end = max(end, h.LastOffset()+1)
		data = data[h.Size():]
	}
	if len(recs) == 0 {
		if end > next {
			r.mu.Lock()
			if p.next == next && !r.failed {
				r.span += end - next
				p.next = end
				if p.head == len(p.pend) {
					p.acked = end
				}
			}
			r.mu.Unlock()
		}
		return 0
	}
	r.mu.Lock()
	if p.next != next || r.failed || p.gone || p.duty.stopping || p.gen != gen {
		r.mu.Unlock()
		return 0
	}
	seq := p.seq0 + uint64(len(p.pend)-p.head)
	for i, rec := range recs {
		p.pend = append(p.pend, pending{off: rec.Offset, ts: rec.Timestamp, size: sizes[i]})
	}
	r.span += end - next
	p.next = end
	r.inflight += len(recs)
	r.inflightB += bytes
	r.mu.Unlock()

	chunk := r.lim.chunk()
	acc := 0
	for i, rec := range recs {
		if r.lim != nil {
			if acc <= 0 {
				want := 0
				for j := i; j < len(recs) && want < chunk; j++ {
					want += int(sizes[j])
				}
				if err := r.lim.wait(ctx, r.cfg.Priority, want); err != nil {
					for j := i; j < len(recs); j++ {
						r.ack(p, gen, seq+uint64(j), sizes[j], errAbandoned)
					}
					r.sent.Add(uint64(i))
					return i
				}
				acc = want
			}
			acc -= int(sizes[i])
		}
		if r.failedFlag.Load() {
			// An earlier record failed: sending more of this partition could
			// let later records land before the resend of the failed one.
			for j := i; j < len(recs); j++ {
				r.ack(p, gen, seq+uint64(j), sizes[j], errAbandoned)
			}
			r.sent.Add(uint64(i))
			return i
		}
		s := seq + uint64(i)
		sz := sizes[i]
		sink.Send(ctx, rec, func(err error) { r.ack(p, gen, s, sz, err) })
	}
	r.sent.Add(uint64(len(recs)))
	return len(recs)
}

func (r *route) toRecord(p *part, br *batch.Record, epoch int32, gen uint64, sl *slab) *Record {
	hs := sl.headers(len(br.Headers) + 5)
	for _, h := range br.Headers {
		hs = append(hs, Header{Key: h.Key, Value: h.Value})
	}
	hs = append(hs, p.hdrs[:]...)
	hs = append(hs, Header{Key: HeaderOffset, Value: sl.itoa(br.Offset)}, Header{Key: HeaderEpoch, Value: sl.itoa(int64(epoch))})
	t := p.target
	if p.keyed {
		t = withKey(t, br.Key)
	}
	rec := sl.record()
	*rec = Record{Topic: t, Key: br.Key, Value: br.Value, Timestamp: br.Timestamp,
		Headers: hs, Partition: p.part, Offset: br.Offset, Attempt: gen}
	return rec
}

// slab hands out Records, header slices and offset strings from shared
// arrays, so a chunk costs a few allocations instead of three per record.
// Each piece has its own capacity limit (appends never overwrite another).
type slab struct {
	recs []Record
	hdrs []Header
	buf  []byte
}

func (s *slab) record() *Record {
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]Record, 0, 256)
	}
	s.recs = s.recs[:len(s.recs)+1]
	return &s.recs[len(s.recs)-1]
}

func (s *slab) headers(n int) []Header {
	if cap(s.hdrs)-len(s.hdrs) < n {
		s.hdrs = make([]Header, 0, max(2048, n))
	}
	l := len(s.hdrs)
	s.hdrs = s.hdrs[:l+n]
	return s.hdrs[l : l : l+n]
}

func (s *slab) itoa(v int64) []byte {
	if cap(s.buf)-len(s.buf) < 20 {
		s.buf = make([]byte, 0, 8192)
	}
	l := len(s.buf)
	s.buf = strconv.AppendInt(s.buf, v, 10)
	return s.buf[l:len(s.buf):len(s.buf)]
}

// skipUndecodable records that the batch h (records from end on) is not
// forwarded because it cannot be decoded.
func (r *route) skipUndecodable(p *part, h batch.Header, end int64, err error) {
	r.mu.Lock()
	from := max(end, h.BaseOffset, p.skipped)
	lost := h.LastOffset() + 1 - from
	if lost <= 0 {
		r.mu.Unlock()
		return // counted when first met (before a rewind or re-read)
	}
	p.skipped = h.LastOffset() + 1
	r.lastErr, r.lastErrAt = fmt.Sprintf("undecodable batch at offset %d skipped: %v", h.BaseOffset, err), time.Now()
	r.mu.Unlock()
	r.dropped.Add(uint64(lost))
	r.errs.Add(1)
	r.logger.Error("forward: undecodable batch skipped, its records are not forwarded",
		"topic", p.topic, "partition", p.part, "offset", h.BaseOffset, "records", lost, "err", err)
}

// readError handles a failed log read at offset next.
func (r *route) readError(p *part, next int64, err error) {
	lg := r.f.opts.Log
	switch {
	case errors.Is(err, log.ErrOffsetOutOfRange):
		start, hwm, oerr := lg.Offsets(p.topic, p.part)
		if oerr != nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if p.next != next {
			return
		}
		switch {
		case next < start:
			lost := start - next
			r.dropped.Add(uint64(lost))
			r.span += start - next
			p.next = start
			if p.head == len(p.pend) {
				p.acked = start
			}
			r.lastErr, r.lastErrAt = "records dropped from the log before they were forwarded", time.Now()
			r.logger.Error("forward: records dropped from the log before they were forwarded",
				"topic", p.topic, "partition", p.part, "offset", next, "lost", lost, "log_start", start)
		case next > hwm && p.duty.foreign:
			// A mirror behind the cursor its origin forwarded to (the
			// records between were acknowledged upstream but had not
			// reached this copy): wait for the copy, never send again
			// what the origin sent.
			p.readRetry = time.Now().Add(r.f.opts.TopicRefreshInterval)
		case next > hwm:
			r.logger.Warn("forward: cursor beyond the log end, moving back", "topic", p.topic,
				"partition", p.part, "offset", next, "hwm", hwm)
			// Nothing in flight can be above hwm; restart from hwm.
			r.span -= next - hwm
			p.next = hwm
			if p.acked > hwm {
				p.acked = hwm
			}
			if p.saved > hwm {
				r.span += p.saved - hwm
				p.saved = hwm
			}
		}
	case errors.Is(err, log.ErrUnknownTopic), errors.Is(err, log.ErrUnknownPartition):
		// Deleted: the next refresh forgets it.
	case errors.Is(err, log.ErrClosed):
		// Shutting down (the log closes after the forwarder).
	default:
		r.errs.Add(1)
		r.setErr(err)
		r.mu.Lock()
		p.readFails++
		n := p.readFails
		bo := backoff{min: r.f.opts.BackoffMin, max: r.f.opts.BackoffMax, n: n - 1}
		p.readRetry = time.Now().Add(bo.next())
		r.mu.Unlock()
		if n <= 3 || n%100 == 0 {
			r.logger.Error("forward: log read failed", "topic", p.topic, "partition", p.part, "offset", next, "err", err, "failures", n)
		}
	}
}
