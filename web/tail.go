package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	rlog "github.com/runnel/runnel/log"
)

// The live tail: GET /topics/{t}/tail streams a topic's records as
// Server-Sent Events.
//
//	?from=earliest | latest (default) | OFFSET | time:MS | time:RFC3339
//	?partition=N   only that partition (default: all, and those added later)
//	?format=text (default) | json | binary   as the records endpoint
//
// Each record is one event (no event name, so EventSource.onmessage gets
// it) whose data is the record as /topics/{t}/partitions/{p}/records
// answers it, and whose id is a cursor of the whole stream:
// "P:NEXT,P:NEXT,..." (each partition's next offset after this event). A
// reconnecting EventSource sends the last id it saw as Last-Event-ID and
// the stream resumes exactly after that event (a Last-Event-ID overrides
// from; a partition the cursor does not name starts at its log start: it
// was added after the cursor was made).
//
// Other events: "gap" ({"partition", "from", "to"}) when the records from
// "from" up to "to" were deleted by retention before the tail got to them;
// "error" ({"message"}) before the stream ends (topic deleted, log
// closed). A comment line is sent every TailHeartbeat while nothing
// happens. Nothing is buffered per client beyond one read: a client that
// does not take a write within TailWriteTimeout is disconnected.

const (
	// DefaultTailHeartbeat is how often an idle tail sends a comment.
	DefaultTailHeartbeat = 15 * time.Second
	// DefaultTailWriteTimeout is how long a tail's write may block on a
	// client that does not read before the client is cut off.
	DefaultTailWriteTimeout = 10 * time.Second
	// tailReadBytes bounds one read of a partition (the most a tail holds).
	tailReadBytes = 256 << 10
)

// tailCursor is each partition's next offset.
type tailCursor map[int32]int64

func (c tailCursor) String() string {
	ps := make([]int32, 0, len(c))
	for p := range c {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(c[p], 10))
	}
	return b.String()
}

func parseCursor(s string) (tailCursor, error) {
	c := tailCursor{}
	for _, part := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(part, ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("bad cursor %q: want PARTITION:OFFSET,...", s)
		}
		c[int32(p)] = o
	}
	return c, nil
}

// tailStart is where a partition without a cursor entry begins.
type tailStart struct {
	kind string // "earliest", "latest", "offset", "time"
	n    int64
}

func parseFrom(s string) (tailStart, error) {
	switch {
	case s == "" || s == "latest":
		return tailStart{kind: "latest"}, nil
	case s == "earliest":
		return tailStart{kind: "earliest"}, nil
	case strings.HasPrefix(s, "time:"):
		v := strings.TrimPrefix(s, "time:")
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return tailStart{kind: "time", n: ms}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return tailStart{}, fmt.Errorf("from=time: wants milliseconds or RFC 3339, not %q", v)
		}
		return tailStart{kind: "time", n: t.UnixMilli()}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return tailStart{}, fmt.Errorf("from must be earliest, latest, an offset or time:MS, not %q", s)
	}
	return tailStart{kind: "offset", n: n}, nil
}

// position returns the first offset of partition p for start.
func (s *Server) position(topic string, p int32, st tailStart) (int64, error) {
	start, hwm, err := s.opts.Log.Offsets(topic, p)
	if err != nil {
		return 0, err
	}
	switch st.kind {
	case "earliest":
		return start, nil
	case "offset":
		return min(st.n, hwm), nil // below start: a gap event tells
	case "time":
		return s.opts.Log.OffsetForTime(topic, p, st.n)
	}
	return hwm, nil
}

func (s *Server) tail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := embedText
	switch q.Get("format") {
	case "", "text":
	case "json":
		f = embedJSON
	case "binary":
		f = embedBinary
	default:
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, "format must be text, json or binary"))
		return
	}
	st, err := parseFrom(q.Get("from"))
	if err != nil {
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, err.Error()))
		return
	}
	topic := r.PathValue("t")
	info, err := s.opts.Log.Topic(topic)
	if err != nil {
		writeError(w, err)
		return
	}
	only := int32(-1)
	if v := q.Get("partition"); v != "" {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil || p < 0 || int(p) >= len(info.Partitions) {
			writeError(w, errf(http.StatusNotFound, codePartitionUnknown, "partition not found"))
			return
		}
		only = int32(p)
	}
	cur := tailCursor{}
	resumed := false
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if cur, err = parseCursor(id); err != nil {
			writeError(w, errf(http.StatusBadRequest, codeBadRequest, "Last-Event-ID: "+err.Error()))
			return
		}
		resumed = true
	}
	for _, pi := range info.Partitions {
		if only >= 0 && pi.Partition != only {
			continue
		}
		if _, ok := cur[pi.Partition]; ok {
			continue
		}
		pos := pi.Start
		if !resumed {
			if pos, err = s.position(topic, pi.Partition, st); err != nil {
				writeError(w, err)
				return
			}
		}
		cur[pi.Partition] = pos
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.stats.tailClients.Add(1)
	defer s.stats.tailClients.Add(-1)
	t := &tailer{s: s, w: w, rc: http.NewResponseController(w), topic: topic, only: only, cur: cur, f: f}
	t.bw = bufio.NewWriterSize(w, 32<<10)
	if err := t.run(r); err != nil && !errors.Is(err, errTailDone) {
		s.stats.tailCut.Add(1)
		s.opts.Logger.Info("http: live tail cut off", "topic", topic, "remote", r.RemoteAddr, "err", err)
	}
}

var errTailDone = errors.New("tail done")

// tailer is one client's stream.
type tailer struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	bw    *bufio.Writer
	topic string
	only  int32
	cur   tailCursor
	f     embedded
	buf   bytes.Buffer
}

// run streams until the client leaves (nil), the topic goes away
// (errTailDone after an error event) or a write does not complete in time.
func (t *tailer) run(r *http.Request) error {
	l := t.s.opts.Log
	wt := rlog.NewWaiter()
	hb := t.s.opts.TailHeartbeat
	timer := time.NewTimer(hb)
	defer timer.Stop()
	if err := t.flush(); err != nil { // headers out: the client knows it is connected
		return err
	}
	for {
		wt.Reset()
		l.WatchTopics(wt)
		info, err := l.Topic(t.topic)
		if err != nil {
			return t.fatal(err)
		}
		moved := false
		for _, pi := range info.Partitions {
			p := pi.Partition
			if t.only >= 0 && p != t.only {
				continue
			}
			if _, ok := t.cur[p]; !ok {
				t.cur[p] = pi.Start // added after the tail began
			}
			n, err := t.step(p)
			if err != nil {
				return err
			}
			if n {
				moved = true
			} else if err := l.Watch(wt, t.topic, p, t.cur[p]); err != nil {
				if errors.Is(err, rlog.ErrUnknownPartition) || errors.Is(err, rlog.ErrUnknownTopic) {
					continue // the topic changed under us: WatchTopics fired
				}
				return t.fatal(err)
			}
		}
		if moved {
			if err := t.flush(); err != nil {
				return err
			}
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(hb)
			select {
			case <-r.Context().Done():
				return nil
			case <-t.s.closing:
				return nil
			default:
			}
			continue
		}
		select {
		case <-wt.C():
		case <-timer.C:
			t.bw.WriteString(": heartbeat\n\n")
			if err := t.flush(); err != nil {
				return err
			}
			timer.Reset(hb)
		case <-r.Context().Done():
			return nil
		case <-t.s.closing:
			return nil
		}
	}
}

// step sends what one read of partition p holds; false when there was
// nothing new.
func (t *tailer) step(p int32) (bool, error) {
	l := t.s.opts.Log
	next := t.cur[p]
	start, hwm, err := l.Offsets(t.topic, p)
	if err != nil {
		return false, nil // deleted meanwhile: the topic watch fired
	}
	if next > hwm { // the partition was cut back (a mirror): follow it
		next = hwm
		t.cur[p] = hwm
	}
	if next < start {
		t.cur[p] = start
		if err := t.event("gap", map[string]int64{"partition": int64(p), "from": next, "to": start}); err != nil {
			return false, err
		}
		return true, nil
	}
	if next >= hwm {
		return false, nil
	}
	recs, err := t.s.readFrom(t.topic, p, next, tailReadBytes)
	if errors.Is(err, rlog.ErrOffsetOutOfRange) {
		return true, nil // retention ran between Offsets and Read: the next step sends the gap
	}
	if err != nil {
		return false, t.fatal(err)
	}
	for i := range recs {
		t.cur[p] = recs[i].Offset + 1
		if err := t.event("", encodeRecord(t.topic, p, &recs[i], t.f)); err != nil {
			return false, err
		}
		t.s.stats.tailEvents.Add(1)
	}
	if len(recs) == 0 {
		// A batch of control records only: step over it.
		data, err := l.Read(t.topic, p, next, tailReadBytes)
		if err != nil || len(data) == 0 {
			return false, nil
		}
		if last, ok := lastOffset(data); ok && last >= next {
			t.cur[p] = last + 1
		}
	}
	return true, nil
}

// event writes one event with the current cursor as its id.
func (t *tailer) event(name string, v any) error {
	t.buf.Reset()
	enc := json.NewEncoder(&t.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if name != "" {
		t.bw.WriteString("event: " + name + "\n")
	}
	t.bw.WriteString("id: " + t.cur.String() + "\ndata: ")
	t.bw.Write(bytes.TrimRight(t.buf.Bytes(), "\n"))
	t.bw.WriteString("\n\n")
	if t.bw.Buffered() >= 16<<10 {
		return t.flush()
	}
	return nil
}

// fatal sends an error event and ends the stream.
func (t *tailer) fatal(err error) error {
	t.event("error", map[string]string{"message": err.Error()})
	t.flush()
	return errTailDone
}

// flush writes what is buffered to the client within the write timeout.
func (t *tailer) flush() error {
	t.rc.SetWriteDeadline(time.Now().Add(t.s.opts.TailWriteTimeout))
	if err := t.bw.Flush(); err != nil {
		return err
	}
	if err := t.rc.Flush(); err != nil {
		return err
	}
	return nil
}
