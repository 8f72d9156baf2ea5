// Package errorfs holds two test file systems implementing vfs.FS:
//
//   - MemFS, an in-memory file system that models durability. Per file it
//     knows the content on stable storage (as of the last Sync) and the
//     writes since; per directory it knows the entries on stable storage (as
//     of the last sync of the directory) and the current ones. Crash returns
//     a new MemFS holding what a disk would hold after a power cut, in one of
//     several CrashModes; FlipBit models bit rot in data already on disk.
//
//   - FS, a fault injector wrapping any vfs.FS. Every operation is numbered
//     and handed to an Injector before it runs; the injector can fail it
//     (once or from then on), make a write short or torn, or report ENOSPC.
//     The numbering lets crash tests stop "at every I/O operation".
//
// Model of a power cut (after pebble's vfs.MemFS crash clones):
//
//	          current state           stable storage
//	file      data (every write)      synced (data as of the last Sync)
//	          pending writes since the last Sync, in order
//	dir       children                syncedChildren (as of the last dir Sync)
//
//	CrashDropUnsynced  entries = syncedChildren, data = synced
//	CrashTornWrite     entries = children; data = synced + pending writes,
//	                   the last pending write of each file cut to a random
//	                   strict prefix
//	CrashZeroTail      entries = children; size = current size, bytes not
//	                   on stable storage read as zeros
//	CrashKeepAll       the process died, the kernel did not: everything
//	                   written survives (kill -9)
//
// A file created or renamed into a directory that was never synced may
// vanish under CrashDropUnsynced; so does a directory made by MkdirAll whose
// parent was not synced, with everything in it.
//
// Caveats: MemFS is byte-granular (real disks tear at sector or page
// granularity, which is a subset of what MemFS produces); times come from
// time.Now; permissions are recorded but not enforced.
package errorfs
