// Package log is runnel's commit log: topics → partitions → segments of
// Kafka RecordBatch v2 batches, crash-safe, with group commit.
//
// # Basics
//
// Open(&Options{Dir: dir}) returns a Log (see api.go). Every partition is
// an append-only sequence of batches with dense offsets from 0. Append
// validates the batches (log/batch: magic, length, CRC-32C, record count),
// stamps baseOffset and partitionLeaderEpoch in place (neither is covered
// by the CRC), writes them to the active segment, and returns once they are
// durable per the topic's fsync policy. Read returns stored bytes unchanged,
// so a fetch can copy file bytes straight to a socket.
//
// Data directory:
//
//	<dir>/meta.db                      bbolt (log/meta): topic configs, group offsets, cursors, node id
//	<dir>/~shared/%020d.slog           shared segment files: small "always" commits of every partition, stored once
//	<dir>/~shared/%020d.sidx           extent index of a rolled shared file (rebuildable from the .slog)
//	<dir>/journal                      node-wide commit journal (the default format; always replayed at open)
//	<dir>/journal.keep-<generation>    a journal kept after a segment fsync failed (replayed at open)
//	<dir>/recovery-point               per-partition durable position (recovery checkpoint)
//	<dir>/<topic>/config.json          the topic's config (meta.db can be rebuilt from it)
//	<dir>/<topic>/<partition>/%020d.log         segment: concatenated batches
//	<dir>/<topic>/<partition>/%020d.index       sparse offset index (rebuildable)
//	<dir>/<topic>/<partition>/%020d.timeindex   sparse time index (rebuildable)
//	<dir>/<topic>~creating, <topic>~deleting   topic being created / deleted (removed at open)
//
// # On-disk formats
//
// All integers big-endian. Every constant and layout below is part of the
// format: never change it (add a version instead).
//
// Segment (.log): nothing but Kafka RecordBatch v2 batches back to back (see
// log/batch for the batch layout), the first one's baseOffset equal to the
// number in the file name. The batch CRC-32C covers bytes [21, end); the
// log checks the rest of the header itself: baseOffset must continue the
// previous batch (or match the index entry), partitionLeaderEpoch must be
// storedLeaderEpoch (0: the log stamps it), magic must be 2, lengths must
// chain to the end of the file.
//
//	0 +----------------------+
//	  | batch (61-byte header|  baseOffset = file base
//	  |  + records)          |
//	  +----------------------+
//	  | batch                |  baseOffset = previous lastOffset + 1
//	  +----------------------+
//	  | ...                  |
//
// Offset index (.index) and time index (.timeindex): a 24-byte header,
// then one entry per index point (the first batch of the segment, then the
// first batch at least Options.IndexIntervalBytes after the previous
// point). Both files hold the same points. Written when a segment is
// sealed (not synced: rebuilt from the .log when missing or failing any
// check, and validated against the .log on every use).
//
//	header (both files)
//	 0 +---------------------------+
//	   | magic "RNLOIDX\0" (.index)|  "RNLTIDX\0" for .timeindex
//	 8 | version u16 = 1           |
//	10 | entry size u16 (12 | 16)  |
//	12 | segment base offset i64   |
//	20 | CRC-32C of [0,20) u32     |
//	24 +---------------------------+
//
//	.index entry                    .timeindex entry
//	 0 +------------------------+    0 +------------------------------+
//	   | relative offset u32    |      | max timestamp so far i64 (ms)|
//	 4 | file position u32      |    8 | relative offset u32          |
//	 8 | CRC-32C of [0,8) u32   |   12 | CRC-32C of [0,12) u32        |
//	12 +------------------------+   16 +------------------------------+
//
// The last time index entry carries the segment's largest timestamp
// (retention by age and OffsetForTime use it without a scan).
//
// Recovery checkpoint (recovery-point), rewritten every
// Options.CheckpointInterval and at Close through temp file + fsync +
// rename + directory fsync:
//
//	 0 +------------------------------+
//	   | magic "RNLCKPT\0"            |
//	 8 | version u16 = 3 | 0 u16      |  (2: no topic id; 1: nor log start, shared end; both still read)
//	12 | entry count u32              |
//	16 | entries:                     |
//	   |  topic length u16, topic     |
//	   |  partition i32               |
//	   |  topic id u64                |  v3: an entry of another topic of that name is ignored
//	   |  segment base i64            |  the segment holding the durable end (file or shared)
//	   |  position i64                |  durable bytes of that segment
//	   |  next offset i64             |  offset after the durable end
//	   |  log start i64               |  v2: batches before it were deleted by retention
//	   | ...                          |
//	   | shared file sequence u64     |  v2: the oldest shared file not wholly synced (else the newest) ...
//	   | shared durable size i64      |  ... and its synced size (bad bytes before: damage; older files: durable)
//	   | CRC-32C of everything u32    |
//	   +------------------------------+
//
// Shared segment file (~shared/%020d.slog, numbered by a sequence that
// only grows; appended to, rolled at Options.SharedSegmentBytes, 32 MiB):
// a 24-byte header, then entries back to back. An entry is one append of
// one partition: the Kafka batches exactly as a segment file would hold
// them (baseOffset and leader epoch stamped), so reads serve them
// unchanged. A file that is no longer needed may be kept as a spare
// (~shared/%020d.free, at most two) and reused for a later sequence: it is
// renamed, its header rewritten, and its entries overwritten in place, so
// past its new end it still holds entries of its earlier use. Version 2
// entry CRCs are XORed with the CRC-32C of the file's sequence (u64), so
// those never pass for entries of the file; nothing is written after a
// seal entry, so what follows one is cut at open.
//
//	header                              entry
//	 0 +---------------------------+     0 +------------------------------+
//	   | magic "RNLSHRD\0"         |       | CRC-32C of [4,end) ^ seed u32|
//	 8 | version u16 = 2           |     4 | payload length u32           |
//	10 | flags u16 = 0             |     8 | topic id u64 (config.json)   |
//	12 | sequence u64 (= name)     |    16 | partition i32                |
//	20 | CRC-32C of [0,20) u32     |    20 | batches (payload)            |
//	24 +---------------------------+       +------------------------------+
//
// seed: CRC-32C of the sequence as u64 (version 1, still read: 0, and
// the file is never reused).
// When a file is rolled, a seal entry ends it: topic id 0, partition -1
// (0xffffffff), and as payload one (topic id u64, partition i32, next
// offset i64) per partition with entries in the file, so recovery knows
// where each partition stood even when its last entries there are damaged.
// An entry belongs to a partition only if the topic's config.json carries
// the same id (a re-created topic of the same name gets a new id).
//
// Shared extent index (~shared/%020d.sidx): which entries of a shared file
// belong to which partition. Written (and synced, one fsync per shared
// file) once the shared file is rolled and wholly durable, and at Close
// for the active file; at open for a file found without one. Open trusts
// it instead of reading the shared file only when every checksum holds
// and it names the shared file's current size; otherwise the file is
// scanned (and the index rewritten). A header, a directory sorted by
// (topic id, partition), then one section per partition:
//
//	header                              directory entry (60 bytes)
//	 0 +---------------------------+     0 +------------------------------+
//	   | magic "RNLSIDX\0"         |       | topic id u64                 |
//	 8 | version u16 = 1           |     8 | partition i32                |
//	10 | flags u16 = 0             |    12 | first offset i64             |
//	12 | sequence u64 (= name)     |    20 | next offset i64              |
//	20 | shared file size i64      |    28 | payload bytes i64            |
//	28 | directory entries u32     |    36 | max timestamp i64            |
//	32 | CRC-32C of directory u32  |    44 | entries u32                  |
//	36 | CRC-32C of [0,36) u32     |    48 | section position u32         |
//	40 +---------------------------+    52 | section length u32           |
//	                                    56 | section CRC-32C u32          |
//	                                       +------------------------------+
//
// A section is, per entry of the partition in file order, four uvarints:
// payload position minus the end of the previous entry's payload, payload
// length, base offset minus the previous entry's next offset, and the
// entry's record count (the first entry's against 0).
//
// Journal (journal): a 24-byte header, then commits. Each commit is one or
// more records padded with zeros to a multiple of 4096 bytes, written at a
// 4096-aligned offset and fdatasync'ed once.
//
//	header                              record
//	 0 +---------------------------+     0 +------------------------------+
//	   | magic "RNLJRNL\0"         |       | body length u32 (0 = padding)|
//	 8 | version u16 = 1           |     4 | CRC-32C of body u32          |
//	10 | flags u16 = 0             |     8 | generation u64 (= header's)  |
//	12 | generation u64            |    16 | topic length u16, topic      |
//	20 | CRC-32C of [0,20) u32     |       | topic id u64 (config.json)   |
//	24 +---------------------------+       | partition i32                |
//	                                       | segment base i64             |
//	                                       | file position i64            |
//	                                       | bytes (as in the segment)    |
//	                                       +------------------------------+
//
// The file is reused in place: a checkpoint of the journal (all journaled
// segments synced) writes a header with the next generation and commits
// start again at byte 4096, over older records; replay stops at the first
// record that is torn, fails its CRC or belongs to another generation.
//
// A record is replayed only into an existing segment of a topic whose
// config.json carries the same id (a deleted and re-created topic of the
// same name gets a new id).
//
// Topic config (config.json, and the "topics" bucket of meta.db): JSON of
// storedConfig (config.go); durations in milliseconds; field names never
// change.
//
// # Durability and group commit
//
// Writers append to the page cache under their partition's lock. One
// committer goroutine (commit.go) takes every dirty partition per cycle and
// makes its new bytes durable, then advances HWMs and calls the waiting
// callbacks in append order (AppendAsync callbacks per partition are
// strictly ordered because only the committer calls them, one partition at
// a time, in queue order). Under fsync "always" the HWM is the durable end:
// a reader never sees a record that could still be lost. "interval" syncs
// each partition at most every FsyncInterval and acknowledges at once;
// "never" leaves it to the OS (and Close).
//
// A cycle that would sync under 1 KiB first gathers: while appends keep
// arriving it waits (at most Options.CommitWindow, default 10ms, or until
// 64 KiB are pending); a quiet step (four times the recent mean gap between
// appends, 100µs-1ms) ends the wait, so a lone writer or writers that all
// wait for their acks pay little. A cycle with more starts at once (busy
// writers batch themselves during the previous sync; waiting would idle
// the disk). Before each cycle the committer waits (at most 1 ms, counted
// in the CommitWindow) until as many appends have arrived as the last
// cycle acknowledged: writers that each wait for their ack all make the
// next commit, instead of splitting into two half-full commits that
// alternate (the append that completes the count wakes the committer; a
// timer under a millisecond would sleep a whole one on an idle process).
//
// # The trickle case: many partitions, a record a second each, fsync always
//
// One fdatasync per file per commit is what a naive log does. On ext4 and
// on SD cards each costs a flush of the partition's 4 KiB tail page (and a
// journal commit for the inode's size), so 1,000 partitions that each get
// a 176-byte batch rewrite 1,000 pages: write amplification ≈ 4096/176 ≈ 23
// and a p99 set by 1,000 serial syncs.
//
// Preallocating segments (fallocate) does not remove the metadata cost on
// ext4: a preallocated extent is "unwritten" and the first write to each
// block converts it, which is a metadata change fdatasync must journal;
// only writing real zeros ahead avoids it, and that doubles the bytes
// written. It also leaves the 4 KiB tail-page rewrite per commit. So it
// does not solve the trickle case.
//
// runnel's first answer was a node-wide journal (journal.go; now the
// format of Options.NoSharedSegments, and still the path of a small commit
// to a segment file in the default format): a partition whose
// unsynced bytes in a commit are small (< Options.JournalSmallBytes, 16 KiB)
// is made durable by a record in the journal; all of them go in one
// sequential write and one fdatasync. Larger commits fdatasync their
// segment files directly (the bulk case: the data is written once). The
// segment files are synced, and the journal emptied (a new generation),
// when it reaches Options.JournalMaxBytes (32 MiB), when the disk guard
// reports little free space (then the file is also truncated), and at
// Close. Commits are padded to whole pages and the file is overwritten in
// place from one generation to the next, so after its first fill an
// fdatasync of the journal changes neither its size nor its block map: no
// file-system metadata journal commit per fsync, which on an SD card is
// several more block writes per commit than the data itself (those writes
// come from the kernel's journal thread and do not show in the process's
// write_bytes below). Recovery replays intact journal records into their
// segments (skipping segments deleted since) before the normal tail scan.
// A journal write or sync failure sends commits back to per-file syncs (a
// failed fsync of a segment later keeps the journal for the next open).
//
// Measured on the 2-core build box (ext4 on virtio, shared with other
// builds; /proc/self/io write_bytes, which counts a page each time a clean
// page is dirtied), 1,000 partitions, 10,000 records/s of 100-byte values
// in total (176-byte batches), 3 s, fsync always, BenchmarkTrickleCore:
//
//	                       p50      p99       write_bytes / byte appended
//	per-file fdatasync     11 ms    16-32 ms  23-24 (and only ~6-9k rec/s)
//	journal, no gather     0.5 ms   3.8 ms    12
//	journal + gather 5ms   2.8-4.4 ms  7-15 ms  3.1-3.3 (pages padded)
//
// The benchmark of log/bench_test.go (BenchmarkTrickle, AppendAsync paced
// at 10,000/s over 1,000 partitions, 2 x 10,000 records): p50 2-4 ms, p99
// 7-13 ms, 2.85-3.05 device bytes per byte, 9,990 acked records/s.
//
// Every byte is written twice there (journal, then segment), so its floor
// is 2.0 plus the partial last page of each commit. The target is 1.5:
// shared segments (below, the default) reach it by storing small commits
// once.
//
// # Store once: shared segment files
//
// By default (off with Options.NoSharedSegments, runnel serve
// --shared-segments=false) small "always" appends are stored only once,
// as entries of node-wide shared segment files (shared.go), and served
// from there. A partition's offsets are a sequence of segments of two
// kinds: segment files (as above) and virtual segments, whose bytes are
// runs, one per shared file they use: a run maps virtual positions to
// that file's entries of the partition (extents: virtual position, file
// position, length). The extents of a run are in memory only while its
// file is written; once the file is rolled and durable its extent index
// (sharedindex.go, format above) is written and they are read from there
// when a read needs them. So memory is per (shared file, partition), about
// 100 bytes, not per append: for 1,000 trickling partitions and 32 MiB
// files, about 0.3% of the retained shared bytes (it was 32 bytes per
// append, ~20%, before the index). The sparse index of a virtual segment
// (in memory only) has one entry per 64 KiB. Offsets, reads, OffsetForTime,
// retention (whole segments), drop-oldest, HoldRetention, Check work on
// both kinds the same way; a read of a virtual segment reads its extents.
//
// Where an append goes: an empty active segment, or a partition whose last
// three commits were small (< Options.JournalSmallBytes, 16 KiB), takes
// small appends into a virtual segment; an append larger than that goes to
// a segment file, once every shared byte of the partition is durable (so
// file bytes are never durable ahead of shared bytes before them; the
// switch the other way fdatasyncs the file first). The bulk case is
// unchanged: written once, to the partition's own file.
//
// Writes: an append to a virtual segment writes one entry at the end of
// the active shared file (writers are serialized by one mutex for the
// WriteAt only, so the file has no holes); a full disk truncates the
// partial entry and returns ErrDiskFull (nothing written, the partition
// stays writable). A commit is one fdatasync of the shared file (and of a
// file rolled since), then every partition's new bytes are durable. A
// failed write or sync of a shared file is never retried: the partitions
// of that commit go read-only, and shared storage is off until the next
// open (small appends then go to segment files).
//
// What a commit costs is the pages it dirties: its bytes plus, again, the
// partial page the previous commit left (clean after its fdatasync). So
// with shared storage a cycle gathers up to 16 KiB (within
// Options.CommitWindow, 10 ms by default with shared segments), and its quiet step ends the
// wait only once as many appends arrived as the last cycle acknowledged
// (writers that each wait for their ack are all back within 500µs: a
// closed loop, nobody else is coming, commit now), with a step of 24 mean
// gaps (at most 3 ms) so a paced trickle (senders that wake every
// millisecond) does not look quiet. Amplification ≈ (S + 20 per entry + ~4 KiB)/S for a
// commit of S bytes: about 1.3-1.4 for 16 KiB of 176-byte batches.
//
// Deletion: each run holds a reference on its shared file; retention,
// drop-oldest and DeleteTopic drop them, and a file nothing references
// (and not the active one) is deleted, after the checkpoint (which holds
// every partition's log start) is written; if it cannot be written (full
// disk) only files older than every referenced one go, so a crash may
// bring back deleted batches but never leaves a gap. When the disk guard
// reports little space, shared files roll at 1 MiB so they free sooner.
//
// Recovery: a shared file with an intact extent index is not read at open
// (it was wholly durable when the index was written; bit rot in it is
// found by reads, which check every batch, and by Check, as for a trusted
// segment file); its runs come from the index directory. Only a file
// without one (in practice the one being written when the process
// stopped) is scanned (entry CRCs and batch headers; entries of unknown
// topic ids are ignored): a torn tail (bad bytes with no valid entry after
// them, past the checkpointed shared end) is truncated, damage elsewhere
// recorded and skipped to the next valid entry; an intact file is then
// fdatasynced (a killed process may have left its bytes in the page cache
// only) and indexed. Idempotent-producer state comes from the last 16 KiB
// of each active virtual segment. Partitions rebuild their virtual
// segments from the extents (after the checkpointed log start), merged
// with their segment files by offset; offsets lost to damage between
// segments, or before the end a seal entry or the checkpoint names, are
// recorded, never reused, and refused by Read with a *CorruptError. Every
// open starts a new shared file (the previous one stays as it is).
//
// Measured on the same box (both formats in one run, two runs each;
// 1,000 partitions, 10,000 records/s of 100-byte values, 176-byte batches,
// fsync always):
//
//	                                    p50      p99       write_bytes / byte  fsyncs/s
//	BenchmarkTrickle (AppendAsync paced, 2 x 10,000 records)
//	  shared segments (the default)     5.7 ms   11.1 ms   1.38-1.39           109-117
//	  journal format (NoSharedSegments) 1.8 ms   8.8 ms    2.98-3.03           559-572
//	  file per partition + fdatasync    1.5 ms   3.1 ms    24.1                (raw baseline)
//	BenchmarkTrickleCore (100 goroutines, Append waiting, 3 s)
//	  shared segments                   5.2-5.4 ms 10.3 ms 1.365 (18.1 KB per shared commit)
//	  journal format                    4.8-5.1 ms 11.7-12.4 ms 3.11-3.15 (11-12 KB per journal commit)
//
// With the extent index and shared segments the default (2026-11-27, load
// 2-3, four runs): shared 1.38-1.41, p50 5.8-6.1 ms, p99 12.3-12.8 ms;
// journal format 4.24-4.36 in the same runs. A 20 s run (200,000
// records: a 32 MiB shared file rolled and indexed): 1.39, p99 14.1 ms.
// Open after an unclean stop of 2 GiB of such data (1 KiB batches, 1,000
// partitions, 66 shared files, BenchmarkRecoveryShared): 323 ms, 7.6 MiB
// of heap (0.37% of the data); reading and CRC-checking every shared file
// (what open did before the index) takes 2.9 s.
//
// Earlier, four more runs of BenchmarkTrickle gave 1.36-1.41
// (p99 10.9-11.1 ms) for shared segments and 4.01-4.22 (p99 7.1-7.5 ms)
// for the journal format in the same runs; a build from before shared
// segments also measured 4.15-4.20 then: the journal format's figure moves
// with the state of the shared disk, the shared one does not.
//
// The short benchmark's figure includes the start (first commits small,
// each paying a partial page) that the 3 s one amortizes. Latency is the
// price of fuller commits: p50 about half the 10 ms window. The remaining
// 0.37 is the 20-byte entry header (11% of a 176-byte batch) and the last
// partial page of each commit rewritten by the next.
//
// Other figures from the same box (BenchmarkBulkCore, ManyWritersCore,
// ReadCore, RecoveryCore in *_core_test.go; load average 5-13 from other
// builds while measuring, so throughput figures are noisy lower bounds):
//
//	bulk, 1 partition, 100 x 1 KiB per batch, always   274 MB/s (plain file + fdatasync per batch: 276 MB/s)
//	64 writers x 64 partitions, 100 B, each waits      BenchmarkManyWriters, 12 runs, load 2-3: journal
//	                                                   format 88-136k acked rec/s (median 108k), shared
//	                                                   89-131k (103k); 63-64 records per fsync of
//	                                                   0.2-0.41 ms (before the committer waited for the
//	                                                   writers it acknowledged, same runs: 70-107k and
//	                                                   63-107k, 45 and 58-62 records per fsync); 11
//	                                                   more runs, load 2-5, fsyncs of 0.23-0.82 ms:
//	                                                   49-132k (median 94k), 42-111k (84k)
//	sequential Read from page cache, 1 MiB calls       2.07 GB/s
//	open 500 segments / 500 MiB after unclean stop     13 ms with the checkpoint, 0.71 s with none (full scan)
//
// With shared segments (store once), same box, quieter (load 2-4),
// BenchmarkBulk / ManyWriters / RecoveryCore, -benchtime 2x, two runs:
//
//	bulk (segment files, unchanged path)               290-366 MB/s (plain file + fdatasync: 328-348 MB/s)
//	64 writers x 64 partitions, each waits             see the table above (ManyWriters, both formats)
//	open 500 segments / 500 MiB after unclean stop     4-5 ms with the checkpoint, 0.28-0.31 s with none
//
// # Device bytes: what the storage device writes
//
// write_bytes (above) counts the pages the process dirties, not what the
// file system adds: ext4's journal (jbd2) commits a transaction for every
// fdatasync that changes a file's size or block map. BenchmarkTrickleDevice
// (devbench_test.go) runs the same trickle on an ext4 of its own (a loop
// device over an image in the test's temp dir) and reads the device's
// sectors written. One run, load ~1, 3 x 20,000 records, per byte
// appended:
//
//	                                       device bytes  write_bytes  jbd2 commits/s
//	default ext4 (data=ordered)
//	  shared, new (growing) files          3.03          1.36         99 (one per fdatasync)
//	  shared, steady state (files reused)  1.58          1.48         4.7
//	  journal format                       11.7          3.30         408
//	  1,000 files + fdatasync (baseline)   34.8          24.9         990
//	ext4 -O fast_commit, mounted noatime
//	  shared, new files                    1.61          1.36         0.7 (+98 fast commits/s)
//	  shared, steady state                 1.55          1.47         3.3
//	  journal format                       6.7           3.32         5 (+411 fast commits/s)
//
// "Steady state" is a log older than its retention: shared files that no
// partition retains any more are kept (at most two) and reused for new
// shared files, renamed and overwritten in place, so an fdatasync changes
// neither size nor block map (see the shared file format above). That
// run keeps ~8 KiB a partition in 2 MiB shared files, so index and
// checkpoint writes weigh more than with the default 32 MiB (its
// write_bytes is 1.48 against 1.36). A helper's earlier runs of the same
// benchmark: shared new files 2.84-3.24, journal format 10.5-13.4.
//
// # Recovery
//
// On open, segments before the checkpointed durable position are trusted
// (indexes load lazily; their headers are walked, not checksummed, for the
// active segment). From that position on every batch is validated: CRC,
// header fields the CRC does not cover, offsets in sequence. At the first
// bad batch the rest of the segment is searched for a later valid batch
// (resync, bounded work): found → damage in the middle (recorded in
// Stats().Damaged with file and byte offset, never served, the batches after
// it still are); not found in the last segment past the checkpoint → a torn
// tail (expected after power loss: truncated, counted in TornTailBytes, not
// damage); not found in a sealed segment or before the checkpoint → damage.
// Appends never continue after damage: a new segment starts. Reads check
// every batch they serve (CRC and header), so bit rot in trusted data is
// refused with a *CorruptError and recorded too. Check and CheckDir (for
// `runnel check DIR`) verify everything without changing anything.
//
// Lost meta.db: topics are rebuilt from their directories and config.json.
//
// # Failures
//
// An fsync or write error makes the partition read-only (ErrReadOnly
// wrapping the cause, Stats().ReadOnly, PartitionInfo.Err): it is never
// retried-and-acknowledged (Linux may drop the dirty pages after a failed
// fsync). Waiting appends get the error; acknowledged data stays readable.
// ENOSPC on a write truncates the partial write back and returns the
// retriable ErrDiskFull; the partition stays writable. The disk guard reads
// free space (statfs) every DiskCheckInterval: under MinFreeBytes, topics
// with on-full "reject" refuse appends with ErrDiskFull, "drop-oldest" ones
// delete their oldest segments (Stats().DroppedSegments), ignoring
// HoldRetention.
//
// # Caveats
//
//   - Segment handles are cached in an LRU (Options.MaxOpenFiles, default
//     256: 5,000 partitions run under ulimit -n 1024); a sync may use a
//     different handle than the write (fsync applies to the inode).
//   - Sparse indexes of sealed segments are kept in memory for at most
//     Options.MaxLoadedIndexes segments (LRU), then reread from their files.
//   - After a partition goes read-only, a journal checkpoint cannot empty
//     the journal (it holds that partition's acknowledged bytes, which a
//     failed fsync may have dropped from the page cache): the file is kept
//     as journal.keep-<generation>, replayed (then removed) at the next
//     open, and a fresh journal goes on.
//   - The index and time index are sparse; OffsetForTime answers with the
//     base offset of the first batch whose max timestamp is >= ts.
//   - Producer idempotence state is rebuilt from the active segment at open;
//     older producers are treated as new.
//   - Shared storage keeps about 100 bytes of memory per (shared file,
//     partition with entries in it): with many more partitions than a
//     32 MiB file holds entries per partition (~180,000 entries of 176
//     bytes), runs hold few entries and the cost per byte grows (10,000
//     partitions: ~3%). Open reads the index directory of every retained
//     shared file (60 bytes per partition per file).
//   - A shared file stays on disk while any partition retains a batch in
//     it: one long-retention partition with a trickle pins the files of
//     short-retention ones (space, not correctness). Copying such batches
//     forward (compaction) would write them twice; not done.
//   - A new shared file grows with every commit, so each fdatasync also
//     commits the inode's new size and block allocation in ext4's journal
//     (jbd2): writes by the kernel's journal thread that /proc/self/io
//     write_bytes does not count. Until retention frees shared files for
//     reuse (see "Device bytes" above) the device sees about 3 bytes per
//     byte, not 1.4; mounting with fast_commit brings that to 1.6.
//     Writing zeros ahead of the writer was tried (a helper's prototype):
//     2.6, and the zeros are written too; not kept.
//   - Writes to shared files happen under one mutex (one WriteAt each;
//     the entry is built before taking it).
//   - The journal format (NoSharedSegments): when the journal fills (32
//     MiB) every journaled segment file is fdatasynced while commits
//     wait. With 1,000 trickling partitions that put p99 at 630-840 ms in
//     15-30 s runs (a helper's BenchmarkTrickleDevice runs); the 1-3 s
//     benchmarks never reach a rotation. The default format journals only
//     a partition's first small commits after bulk ones.
package log
