package errorfs

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// FailNth fails the Nth operation (counting from 1) among those whose kind
// is in Kinds and that pass Filter; with Persistent, every later matching
// operation fails too. Err nil means ErrInjected. ShortN > 0 turns a failing
// write into a short write of ShortN bytes (a torn write).
type FailNth struct {
	Kinds      Kinds
	N          uint64
	Persistent bool
	Err        error
	ShortN     int
	Filter     func(Op) bool // nil: every op of Kinds matches

	seen  atomic.Uint64
	fired atomic.Uint64
}

// MaybeError implements Injector.
func (f *FailNth) MaybeError(op Op) error {
	if !f.Kinds.Has(op.Kind) || (f.Filter != nil && !f.Filter(op)) {
		return nil
	}
	i := f.seen.Add(1)
	if i != f.N && !(f.Persistent && i > f.N) {
		return nil
	}
	f.fired.Add(1)
	err := f.Err
	if err == nil {
		err = ErrInjected
	}
	if f.ShortN > 0 && WriteOps.Has(op.Kind) {
		return &ShortWrite{N: f.ShortN, Err: err}
	}
	return err
}

// Seen is the number of matching operations so far.
func (f *FailNth) Seen() uint64 { return f.seen.Load() }

// Fired is the number of operations failed so far.
func (f *FailNth) Fired() uint64 { return f.fired.Load() }

// ErrNoSpace is the error DiskFull injects: ENOSPC as the OS reports it.
var ErrNoSpace error = syscall.ENOSPC

// DiskFull models a disk with Limit bytes left for writes: the write that
// crosses the limit writes what fits and fails with ENOSPC, later writes
// fail outright. Overwrites count as new bytes (a conservative model). Free
// gives space back.
type DiskFull struct {
	mu      sync.Mutex // guards limit, written
	limit   int64
	written int64
}

// NewDiskFull returns a DiskFull with limit bytes left.
func NewDiskFull(limit int64) *DiskFull { return &DiskFull{limit: limit} }

// MaybeError implements Injector.
func (d *DiskFull) MaybeError(op Op) error {
	if !WriteOps.Has(op.Kind) && op.Kind != OpPreallocate {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	left := d.limit - d.written
	if int64(op.Len) <= left {
		if op.Kind != OpPreallocate {
			d.written += int64(op.Len)
		}
		return nil
	}
	if left <= 0 || op.Kind == OpPreallocate {
		return ErrNoSpace
	}
	d.written = d.limit
	return &ShortWrite{N: int(left), Err: ErrNoSpace}
}

// Free adds n bytes of space.
func (d *DiskFull) Free(n int64) {
	d.mu.Lock()
	d.limit += n
	d.mu.Unlock()
}

// Written is the number of bytes accepted so far.
func (d *DiskFull) Written() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written
}

// Any combines injectors: the first non-nil error wins. Every injector sees
// every operation (so their counters stay exact).
func Any(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) error {
		var first error
		for _, in := range injs {
			if err := in.MaybeError(op); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
}

// Crasher stops the world at one operation: before the operation numbered
// At among those in Kinds (from 1), it calls OnCrash (typically taking
// MemFS.Crash snapshots), and from then on every operation of any kind
// fails with ErrCrashed, as if the machine had lost power. Safe for
// concurrent use; OnCrash runs once, with other operations blocked.
type Crasher struct {
	Kinds   Kinds
	At      uint64
	OnCrash func(op Op)

	mu      sync.Mutex // guards seen, crashed and the OnCrash call
	seen    uint64
	crashed bool
}

// ErrCrashed is what every operation returns after a Crasher fired.
var ErrCrashed = fmt.Errorf("errorfs: machine crashed: %w", syscall.EIO)

// MaybeError implements Injector.
func (c *Crasher) MaybeError(op Op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return ErrCrashed
	}
	if !c.Kinds.Has(op.Kind) {
		return nil
	}
	c.seen++
	if c.seen < c.At {
		return nil
	}
	c.crashed = true
	if c.OnCrash != nil {
		c.OnCrash(op)
	}
	return ErrCrashed
}

// AfterOp makes an operation that was still running when the crash
// happened fail: its effect may or may not be in the snapshot, so it must
// not report success.
func (c *Crasher) AfterOp(op Op, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed && err == nil {
		return ErrCrashed
	}
	return err
}

// Crashed reports whether the crash happened.
func (c *Crasher) Crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// Seen is the number of matching operations counted (up to the crash).
func (c *Crasher) Seen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen
}

// LinuxSyncFailure wraps inj so that each file sync it fails also makes mem
// drop the file's dirty pages (MemFS.FailSync), as Linux does: a retried
// fsync then "succeeds" without the data. Use it when the wrapped FS is
// mem (possibly through other wrappers using the same paths).
func LinuxSyncFailure(mem *MemFS, inj Injector) Injector {
	return InjectorFunc(func(op Op) error {
		err := inj.MaybeError(op)
		if err != nil && op.Kind == OpSync {
			mem.FailSync(op.Path)
		}
		return err
	})
}
