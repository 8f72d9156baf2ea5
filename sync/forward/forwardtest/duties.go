package forwardtest

import (
	"maps"
	"sync"

	"github.com/runnel/runnel/sync/forward"
)

// Duties is a forward.Duties (and DutyStopper) whose list the test sets
// with Set; it records every Stopped call.
type Duties struct {
	mu      sync.Mutex // guards everything below
	list    []forward.Duty
	changed chan struct{}
	stopped []StoppedDuty
}

// StoppedDuty is one Stopped call.
type StoppedDuty struct {
	Duty    forward.Duty
	Cursors map[string]int64
}

// NewDuties returns a provider holding list.
func NewDuties(list ...forward.Duty) *Duties {
	return &Duties{list: list, changed: make(chan struct{})}
}

// Set replaces the list and signals the change.
func (d *Duties) Set(list ...forward.Duty) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = list
	close(d.changed)
	d.changed = make(chan struct{})
}

// Duties implements forward.Duties.
func (d *Duties) Duties() []forward.Duty {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]forward.Duty(nil), d.list...)
}

// Changed implements forward.Duties.
func (d *Duties) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Stopped implements forward.DutyStopper.
func (d *Duties) Stopped(duty forward.Duty, cursors map[string]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = append(d.stopped, StoppedDuty{Duty: duty, Cursors: maps.Clone(cursors)})
}

// StoppedDuties returns the Stopped calls so far, in call order.
func (d *Duties) StoppedDuties() []StoppedDuty {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]StoppedDuty(nil), d.stopped...)
}
