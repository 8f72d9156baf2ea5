package forwardtest

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/runnel/runnel/sync/forward"
)

// ErrInjected is the error FakeSink fails records with.
var ErrInjected = errors.New("forwardtest: injected failure")

// FakeSink is an in-memory forward.Sink: one goroutine acknowledges
// records in Send order. Fail decides per record whether it fails.
type FakeSink struct {
	// Fail, when set, is called for every record (in order); true fails it.
	Fail func(rec *forward.Record) bool

	mu     sync.Mutex // guards everything below
	cond   *sync.Cond
	queue  []fakeItem
	failed map[fakeStream]uint64 // stream → failed attempt + 1
	got    []forward.Record
	closed bool
	done   chan struct{}
}

type fakeStream struct {
	topic string
	part  int32
}

type fakeItem struct {
	rec  forward.Record
	done func(error)
}

// NewFakeSink starts a FakeSink; Close stops it.
func NewFakeSink() *FakeSink {
	s := &FakeSink{done: make(chan struct{}), failed: map[fakeStream]uint64{}}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// Factory returns a NewSinkFunc that always hands out s.
func (s *FakeSink) Factory() forward.NewSinkFunc {
	return func(string, forward.Upstream, *slog.Logger) (forward.Sink, error) { return s, nil }
}

func (s *FakeSink) Send(_ context.Context, rec *forward.Record, done func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		go done(errors.New("forwardtest: sink closed"))
		return
	}
	s.queue = append(s.queue, fakeItem{*rec, done})
	s.cond.Signal()
}

func (s *FakeSink) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		q := s.queue
		s.queue = nil
		closed := s.closed
		fail := s.Fail
		s.mu.Unlock()
		// A failure fails the later records of the same stream and
		// attempt (see forward.Record.Attempt).
		var ok []forward.Record
		for _, it := range q {
			k := fakeStream{it.rec.Topic, it.rec.Partition}
			if closed || s.failed[k] == it.rec.Attempt+1 || (fail != nil && fail(&it.rec)) {
				s.failed[k] = it.rec.Attempt + 1
				it.done(ErrInjected)
				continue
			}
			ok = append(ok, it.rec)
			it.done(nil)
		}
		s.mu.Lock()
		s.got = append(s.got, ok...)
		s.mu.Unlock()
		if closed {
			return
		}
	}
}

// Records returns every acknowledged record so far, in ack order.
func (s *FakeSink) Records() []forward.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]forward.Record(nil), s.got...)
}

// Close fails queued records and stops. Idempotent.
func (s *FakeSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Signal()
	s.mu.Unlock()
	<-s.done
	return nil
}
