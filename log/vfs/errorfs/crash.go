package errorfs

import (
	"fmt"
	"math/rand/v2"
	"syscall"
)

// CrashMode says what a power cut does to data and directory entries that
// were not on stable storage.
type CrashMode int

const (
	// CrashDropUnsynced loses every unsynced write, truncate and directory
	// entry: files hold what their last Sync wrote, directories the entries
	// of their last Sync.
	CrashDropUnsynced CrashMode = iota
	// CrashTornWrite keeps directory entries and every unsynced write
	// except that the last unsynced write of each file is cut to a random
	// strict prefix (a write torn by the power cut).
	CrashTornWrite
	// CrashZeroTail keeps directory entries and file sizes (the metadata
	// reached the journal) but bytes that were never synced read as zeros
	// (ext4 data=writeback, unwritten extents).
	CrashZeroTail
	// CrashKeepAll keeps everything: the process died, the kernel did not.
	CrashKeepAll
)

// CrashModes lists every mode, for tests that try each.
var CrashModes = []CrashMode{CrashDropUnsynced, CrashTornWrite, CrashZeroTail, CrashKeepAll}

func (m CrashMode) String() string {
	switch m {
	case CrashDropUnsynced:
		return "drop-unsynced"
	case CrashTornWrite:
		return "torn-write"
	case CrashZeroTail:
		return "zero-tail"
	case CrashKeepAll:
		return "keep-all"
	}
	return fmt.Sprintf("CrashMode(%d)", int(m))
}

// Crash returns a new MemFS holding what the disk holds after a power cut
// now, per mode. The new FS has nothing unsynced. fs itself is unchanged
// and may keep being used (its later operations do not reach the clone).
func (fs *MemFS) Crash(mode CrashMode) *MemFS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.crashes++
	out := &MemFS{rng: rand.New(rand.NewPCG(fs.rng.Uint64(), fs.crashes))}
	memo := map[*node]*node{}
	out.root = fs.cloneLocked(fs.root, mode, memo)
	return out
}

func (fs *MemFS) cloneLocked(n *node, mode CrashMode, memo map[*node]*node) *node {
	if c, ok := memo[n]; ok {
		return c
	}
	if n.isDir {
		c := newDir(n.mode)
		c.modTime = n.modTime
		memo[n] = c
		src := n.children
		if mode == CrashDropUnsynced {
			src = n.syncedChildren
		}
		for name, child := range src {
			cc := fs.cloneLocked(child, mode, memo)
			c.children[name] = cc
			c.syncedChildren[name] = cc
		}
		return c
	}
	c := &node{mode: n.mode, modTime: n.modTime}
	memo[n] = c
	c.data = fs.crashDataLocked(n, mode)
	c.synced = append([]byte(nil), c.data...)
	return c
}

// crashDataLocked is the content of file n after a power cut.
func (fs *MemFS) crashDataLocked(n *node, mode CrashMode) []byte {
	switch mode {
	case CrashKeepAll:
		return append([]byte(nil), n.data...)
	case CrashDropUnsynced:
		return append([]byte(nil), n.synced...)
	case CrashZeroTail:
		out := make([]byte, len(n.data))
		copy(out, n.synced)
		return out
	}
	// CrashTornWrite.
	last := -1
	for i, p := range n.pending {
		if p.data != nil && len(p.data) > 0 {
			last = i
		}
	}
	out := append([]byte(nil), n.synced...)
	for i, p := range n.pending {
		switch {
		case p.data == nil:
			out = resize(out, p.size)
		case i == last:
			out = applyWrite(out, p.data[:fs.rng.IntN(len(p.data))], p.off)
		default:
			out = applyWrite(out, p.data, p.off)
		}
	}
	return out
}

func applyWrite(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

// FlipBit flips bit (0-7) of the byte at byteOffset of name, in the current
// content and on stable storage alike: bit rot in data already on disk.
func (fs *MemFS) FlipBit(name string, byteOffset int64, bit uint) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookupLocked(name)
	if err != nil {
		return pathErr("flipbit", name, err)
	}
	if n.isDir {
		return pathErr("flipbit", name, syscall.EISDIR)
	}
	if bit > 7 || byteOffset < 0 || byteOffset >= int64(len(n.data)) {
		return pathErr("flipbit", name, syscall.EINVAL)
	}
	n.data[byteOffset] ^= 1 << bit
	if byteOffset < int64(len(n.synced)) {
		n.synced[byteOffset] ^= 1 << bit
	}
	return nil
}
