// Package log is runnel's commit log: topics → partitions → segments of
// Kafka RecordBatch v2 batches, crash-safe, with group commit.
//
// # Basics
//
// Open(&Options{Dir: dir}) returns a Log (see api.go). Every partition is
// an append-only sequence of batches with dense offsets from 0. Append
// validates the batches (log/batch: magic, length, CRC-32C, record count),
// stamps baseOffset and partitionLeaderEpoch (the node's epoch, see "Leader
// epochs") in place (neither is covered by the CRC), writes them to the
// active segment, and returns once they are
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
//	<dir>/~epoch                       the node's epoch (the one local appends stamp)
//	<dir>/~format                      data format marker (none at data format 1; see "Upgrades and downgrades")
//	<dir>/<topic>/config.json          the topic's config (meta.db can be rebuilt from it)
//	<dir>/<topic>/<partition>/%020d.log         segment: concatenated batches
//	<dir>/<topic>/<partition>/%020d.index       sparse offset index (rebuildable)
//	<dir>/<topic>/<partition>/%020d.timeindex   sparse time index (rebuildable)
//	<dir>/<topic>/<partition>/leader-epochs     the partition's leader-epoch history (rebuildable but for truncations)
//	<dir>/<topic>/<partition>/%020d.cleaned.tmp  a compacted segment being written by the cleaner (removed at open)
//	<dir>/<topic>/<partition>/transactional     empty: the partition has held a transactional batch (synced before the first,
//	                                           after ~format says data format 2)
//	<dir>/<topic>/<partition>/<from>-<to>.damaged  offsets [from, to) repaired (repair.go): the damaged bytes moved
//	                                           aside (empty when they stay in a shared file); reads pass over them
//	<dir>/~creating-<id>, ~deleting-<id>       topic being created / deleted, by topic id in hex (removed at open;
//	                                           <topic>~creating and <topic>~deleting from earlier versions too)
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
// the epoch the partition's leader-epoch history gives the batch's offset
// (the history is durable before the batches it describes), magic must be
// 2, lengths must chain to the end of the file.
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
// Options.CheckpointInterval while appends come (none while the log takes
// none) and at Close through temp file + fsync + rename + directory fsync:
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
// past its new end it still holds entries of its earlier use. The file
// being written may also hold zeros past its entries (its size is set up
// to 256 KiB ahead, see "Store once"); a rolled or cleanly closed file
// ends with its last entry. Version 2
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
// same name gets a new id). Replay reaches the segments through the file
// cache, as every other open of the log does: a journal naming 5,000
// partitions replays within Options.MaxOpenFiles handles (each replayed
// file is synced at the end, through whatever handle the cache has then).
//
// Topic config (config.json, and the "topics" bucket of meta.db): JSON of
// storedConfig (config.go); durations in milliseconds; field names never
// change.
//
// Node epoch (~epoch): a 24-byte file header (as the journal's) whose u64
// is the epoch (1 to 2^31-1), rewritten through temp file + fsync +
// rename + directory fsync at every open (flags 0), when the epoch is
// raised, and at the end of a Close that made everything durable (flags
// 1: clean).
//
//	 0 +---------------------------+
//	   | magic "RNLNEPO\0"         |
//	 8 | version u16 = 1           |
//	10 | flags u16 (1 = clean)     |
//	12 | epoch u64                 |
//	20 | CRC-32C of [0,20) u32     |
//	24 +---------------------------+
//
// Leader-epoch history (<topic>/<partition>/leader-epochs): a 24-byte
// header (magic "RNLEPCH\0", version 1, u64 0), then 32-byte records,
// appended and fdatasynced one change at a time, replayed in order at
// open. The file is rewritten whole (temp file + fsync + rename +
// directory fsync) when it is created, when a record was torn or a write
// failed, and when open drops entries past the end of the recovered log.
//
//	record
//	 0 +------------------------------+
//	   | kind u8                      |  1 epoch start, 2 truncation, 3 truncation done
//	 1 | flags u8                     |  kind 1: 2 = replicated (AppendAt); kind 2: 1 = done
//	 2 | zero u16                     |
//	 4 | epoch i32                    |  kind 1
//	 8 | offset i64                   |  kind 1: where the epoch starts; 2: the new end
//	16 | shared sequence u64          |  kind 2: the newest shared file at the truncation
//	24 | zero u32                     |
//	28 | CRC-32C of [0,28) u32        |
//	32 +------------------------------+
//
// An epoch start drops the entries that start at or after its offset
// (they hold no batch: an epoch recorded before its first append, which
// never came) and must carry a later epoch than the entry before it. A
// truncation drops the entries at or after its offset. A bad record with
// no intact record after it is a torn tail (the append it describes was
// never written: the record is durable before the batches); any other bad
// record, or one that breaks the order, is damage: the history is then
// rebuilt from the batch headers (and reported).
//
// # Durability and group commit
//
// Writers append to the page cache under their partition's lock. One
// committer goroutine (commit.go) takes every dirty partition per cycle and
// makes its new bytes durable, then advances HWMs and calls the waiting
// callbacks in append order (AppendAsync callbacks per partition are
// strictly ordered because only the committer calls them, one partition at
// a time, in queue order). Under fsync "always" the HWM is the durable end:
// a reader never sees a record that could still be lost. "interval" and
// "never" acknowledge an append once it is written (AppendAsync calls done
// before it returns, unless earlier appends of the partition still wait
// for a sync): no commit cycle is involved. "interval" syncs a partition
// one FsyncInterval after its first unsynced append (the committer arms a
// timer for the earliest one); "never" leaves it to the OS (and Close).
//
// # Acknowledgement and the commit delay
//
// An acknowledgement waits for the sync that covers it and for nothing
// else that can be avoided. The committer sleeps until an append (or a
// due "interval" sync, or a caller of CommitFeeder) wakes it; when the
// disk is idle a commit starts at once, and what arrives during a commit's
// syncs goes into the next one (natural group commit: the busier the log,
// the fuller each sync). When nothing happens the committer does not
// wake: it has no ticker.
//
// One deliberate wait remains, the trickle hold, bounded by
// Options.CommitDelay (the one setting, modelled on PostgreSQL's
// commit_delay; default 10ms, off with a negative value, `runnel serve
// --commit-delay 0`) and by what it buys, counted in Stats
// (CommitsDelayed, CommitDelayNanos) and so in the metrics, and started
// only by writers that do not wait for their acks. Appends of writers that do
// not wait for an acknowledgement (an append whose partition was last
// synced at least IndependentAfter, 5 ms, ago; MQTT ingest reports its
// publishes itself: QoS 0, or a client with nothing pending whose last
// PUBACK is that old) are averaged into a rate (time constant 100 ms).
// Awaited appends never count, however old their partition's last sync:
// AppendAt and AtAppender.AppendAtAsync (a mirror's copy, one writer
// that fetches again only once its last copy is durable; AppendAtAsync
// lets it write every partition of a fetch before the commit starts, so
// they share one sync) and AwaitedAppender.AppendAsyncAwaited (a Kafka
// acks=all produce, whose acknowledgement also waits for the copies on
// other boxes, so its next batch always comes more than IndependentAfter
// after its last sync); holding their commits would only add to a wait
// that already spans two boxes' syncs.
// When that rate fills a small commit (under 16 KiB with shared segments,
// 4 KiB with the journal format: the page costs below) with at least
// another 4 KiB within CommitDelay, the commit waits for it: until the
// target is pending (the append that brings it there wakes the
// committer) or for the time the rate says that takes. Writers that each
// wait for their ack never count toward the rate, so on their own they are
// never held, alone or many (an append of theirs that lands in a commit a
// trickle holds waits with it); a lone paced writer does not bring the
// 4 KiB the hold must buy. Closed-loop writers (each waits for its ack, then appends
// again) are not held back to share one commit either: they settle into
// at most two groups whose commits alternate, each group's appends made
// during the other's sync (waiting for the later group on an idle disk
// would save it one sync and cost everyone else a wait; a Go timer under
// a millisecond fires after about one on an idle process).
//
// Callers that coalesce records per partition (MQTT ingest) use the
// CommitFeeder capability: their open batch is handed over when the next
// commit starts, so it holds everything that arrived until then and a busy
// partition writes one batch per commit.
//
// What each value of CommitDelay costs and buys, measured on the 2-core
// build box (ext4 on virtio; other builds running, load average 10-20, so
// the p99 figures are mostly the box's), 1,000 partitions at 10,000
// records/s, shared segments, one run of each (RUNNEL_BENCH_COMMIT_DELAY=
// -1ns|2ms|5ms|10ms|20ms go test -run '^$' -bench 'BenchmarkTrickle$/shared|
// BenchmarkTrickleDevice/ext4/shared' -benchtime 3x ./log/):
//
//	                BenchmarkTrickle                            TrickleDevice, device bytes/byte
//	CommitDelay     p50     p99     write_bytes/byte  fsyncs/s  new files  files reused
//	off (0)         1.9 ms  25 ms   2.53              597       11.8       4.29
//	2ms             1.5 ms  158 ms  2.56              618       8.5        4.57
//	5ms             4.8 ms  31 ms   1.51              161       2.73       2.05
//	10ms (default)  6.0 ms  22 ms   1.37              106       2.62       1.81
//	20ms            6.3 ms  32 ms   1.37              102       2.66       1.57
//
// (2ms holds nothing: 2 ms of this trickle is under the 4 KiB a hold must
// buy.) Writers that wait for their acks never start a hold, so every
// value gives them the same: `runnel bench e2e --rate 10000` (4
// partitions, acks=all; franz-go waits for its acks) p50 0.84-1.00 ms
// with --commit-delay 0 and 0.87-1.02 ms with 10ms (the committer with
// timers: 9.3-10.1 ms; three runs each, interleaved; p99 30-120 ms for
// all of them on that box); MQTT QoS 1 clients that wait for their
// PUBACKs: no commit held (ingest/mqtt TestPubacksWaitOnlyForTheirSync).
// Many MQTT devices that each publish now and then do start it: 500
// devices, each a QoS 1 message every 100 ms, 104 fsyncs/s at 10ms (the
// committer with timers: 231).
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
// ext4 for this load: a preallocated extent is "unwritten" and the first
// write to each block converts it, which is a metadata change fdatasync
// must journal, and here each commit writes another file's block; only
// writing real zeros ahead avoids it, and that doubles the bytes written.
// It also leaves the 4 KiB tail-page rewrite per commit. So it does not
// solve the trickle case. (Where commits follow each other in one file,
// as in the journal and the active shared file, zeros are written ahead
// once for all the commits a step holds: below.)
//
// The journal format (journal.go; Options.NoSharedSegments, and the path
// of a small commit to a segment file in the default format) answers with
// a node-wide journal: a partition whose
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
// files, about 0.3% of the retained shared bytes (an extent per append in
// memory would be 32 bytes, ~20%). The sparse index of a virtual segment
// (in memory only) has one entry per 64 KiB. Offsets, reads, OffsetForTime,
// retention (whole segments), drop-oldest, HoldRetention, Check work on
// both kinds the same way; a read of a virtual segment reads its extents.
//
// Where an append goes: an empty active segment, or a partition whose last
// eight commits to its segment file were small (< Options.JournalSmallBytes,
// 16 KiB), takes small appends into a virtual segment. A partition in
// shared storage moves to a segment file with an append over 16 KiB that
// follows eight commits in a row of at least twice that (32 KiB), or with
// any append over four times that (64 KiB); appends of 16 KiB or less stay
// in shared storage however large their commits. It moves only once every
// shared byte of the partition is durable, in every virtual segment, not
// only the active one (so file bytes are never durable ahead of shared
// bytes before them); a move the other way first fdatasyncs every segment
// file of the partition with bytes not yet durable. Commits between the
// two thresholds, and a few large ones among small ones, leave a
// partition where it is: each move rolls a segment (a move to a file
// creates one and syncs its directory), and with one threshold and an
// immediate move to a file, loads whose commits hover around 16 KiB
// flapped. `mosquitto_pub -q 1 -l -M N` into `runnel serve`, 100,000
// messages of 100 bytes to one partition, non-empty segment files
// created, two runs each before and after: window 100 11-17 and 0-1;
// window 300 6 and 0-1; window 1000 33-52 and 5-11 (its commits come in
// long phases of large and of small ones); the rates unchanged within the
// runs' spread (86-131k messages/s). The bulk case is unchanged: written
// once, to the partition's own file.
//
// Writes: an append to a virtual segment writes one entry at the end of
// the active shared file (writers are serialized by one mutex for the
// WriteAt only, so the file has no holes); a full disk truncates the
// partial entry and returns ErrDiskFull (nothing written, the partition
// stays writable). The active file is grown ahead of its entries in
// steps of 256 KiB (growFile; sharedGrow in shared_append.go), as the
// journal is: with zeros while its commits average under 32 KiB, with
// fallocate above (sharedZerosBelow). An fdatasync of an entry at the
// end of a file changes the file's size, on ext4 a file-system journal
// commit each; an entry written inside the size changes none, and over
// zeros already written it changes no block map either. pwrite + fdatasync of
// 256-byte entries, 3,000 in a row, 2-core VM: ext4 with a journal
// (mkfs.ext4 defaults, on a loop device) 552-711 µs each at the end of the
// file, 294-319 µs inside its size; the VM's ext4 without a journal
// 202-230 µs and 154-160 µs. One MQTT client publishing QoS 1 one message
// at a time (mosquitto_pub -M 1, fsync always, a fresh data dir) got
// 1,290-1,434 msg/s before and 2,202-2,347 after on the journaled ext4,
// 2,401-2,522 and 3,085-3,116 on the other (two runs each, interleaved).
// The zeros past the entries are cut like a recycled file's stale bytes:
// at a roll (with the seal entry), at Close (before the file is indexed),
// and at open after a crash, where zeros only are not counted as a torn
// tail.
//
// Why both: a preallocated (fallocate) block is "unwritten": the first
// entry in it converts it, a metadata write in that commit's sync, which
// is nearly every commit once commits are a few KiB (an MQTT client's
// window of 20 in one commit): pwrite + fdatasync
// of 3,400-byte entries (BenchmarkGrowSync; TMPDIR picks the file
// system), p50 of three runs of 1,500, 628-1,070 µs
// preallocated against 304-365 µs over written zeros on the journaled
// ext4, 244-432 against 142-171 µs on the other. The trickle load's 16 KiB
// commits into a fresh file (go test -run XXX -bench
// 'TrickleDevice/ext4[a-z-]*/shared' -benchtime 1x ./log/; three runs of
// each build for new files, two once files are recycled): 94-108
// file-system journal commits a second with fallocate, 8 with zeros, and
// 2.61-2.81 against 2.69-2.74 device bytes per byte; ext4 with fast_commit
// (not a mkfs default) 1.68-1.72 against 2.86-2.92 (what the zeros cost
// is their own write while a file is first filled, which there the
// conversions did not cost); once files are recycled (shared-steady,
// their blocks written already) 1.59-1.61 either way (but one run of each
// build at 2.43 on ext4 with mkfs defaults). (Those runs grew
// with zeros whatever the commits' size.) Larger commits convert many
// blocks in one metadata write, so zeros would about double the bytes of
// a first fill at bulk rates: above 32 KiB a commit, fallocate. The
// journal is always grown with zeros: it is overwritten in place from one
// generation to the next, so they are written once for its life.
//
// (Setting the size ahead at all, with fallocate, had taken the trickle
// load from 115.6 to 106.4 journal commits a second and from 3.06 to 2.78
// device bytes per byte, and shared-steady from 1.61 to 1.60.)
//
// A commit is one fdatasync of the shared file (and of
// a file rolled since), then every partition's new bytes are durable. A
// failed write or sync of a shared file is never retried: the partitions
// of that commit go read-only, and shared storage is off until the next
// open (small appends then go to segment files).
//
// What a commit costs is the pages it dirties: its bytes plus, again, the
// partial page the previous commit left (clean after its fdatasync). So
// with shared storage the trickle hold (see "Acknowledgement and the
// commit delay") fills a commit up to 16 KiB. Amplification ≈ (S + 20 per
// entry + ~4 KiB)/S for a commit of S bytes: about 1.3-1.4 for 16 KiB of
// 176-byte batches.
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
// Four more runs of BenchmarkTrickle (load 2-3): shared 1.38-1.41, p50 5.8-6.1 ms, p99 12.3-12.8 ms;
// journal format 4.24-4.36 in the same runs. A 20 s run (200,000
// records: a 32 MiB shared file rolled and indexed): 1.39, p99 14.1 ms.
// Open after an unclean stop of 2 GiB of such data (1 KiB batches, 1,000
// partitions, 66 shared files, BenchmarkRecoveryShared): 323 ms, 7.6 MiB
// of heap (0.37% of the data); reading and CRC-checking every shared file
// (what an open without extent indexes would do) takes 2.9 s.
//
// Across runs the journal format's figure moves with the state of the
// shared disk (2.98-4.36 above), the shared one does not (1.36-1.41).
//
// The short benchmark's figure includes the start (first commits small,
// each paying a partial page) that the 3 s one amortizes. Latency is the
// price of fuller commits: p50 about half the 10 ms commit delay. The remaining
// 0.37 is the 20-byte entry header (11% of a 176-byte batch) and the last
// partial page of each commit rewritten by the next.
//
// Other figures from the same box (BenchmarkBulkCore, ManyWritersCore,
// ReadCore, RecoveryCore in *_core_test.go; load average 5-13 from other
// builds while measuring, so throughput figures are noisy lower bounds):
//
//	bulk, 1 partition, 100 x 1 KiB per batch, always   274 MB/s (plain file + fdatasync per batch: 276 MB/s)
//	64 writers x 64 partitions, 100 B, each waits      BenchmarkManyWriters, committing as the disk
//	                                                   allows (no commit held for the writers still
//	                                                   coming back: they alternate in two groups),
//	                                                   two runs, load 10-20, fsyncs of 0.46-0.78 ms:
//	                                                   journal format 39-51k acked rec/s, shared
//	                                                   59-63k, 33-34 records per fsync; the committer
//	                                                   that held each commit up to 1 ms for them, same
//	                                                   runs: 81-94k and 63-65k, 63-64 records per
//	                                                   fsync (earlier, load 2-3: 88-136k and 89-131k)
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
// write_bytes is 1.48 against 1.36). Other runs of the same benchmark:
// shared new files 2.84-3.24, journal format 10.5-13.4.
//
// # Figures
//
// The figures of the log as it is, each the metric of one benchmark with
// the go test command that reproduces it: `make bench` prints this table,
// `make bench-docs` writes it here and into the README (cmd/runnel
// TestFiguresTables keeps the two the same). The measurements in the
// sections above are the ones each design choice was made on, with the
// code of that time; where they differ from this table, the table is the
// code as it is.
//
// figures:begin
//
//	make bench, 2026-12-06, b31e8e7; 2 CPUs; load average 13.57 12.07 10.33; temp dirs on /tmp (ext4 on /dev/vda); go1.26.8 linux/amd64.
//
//	| figure | value | unit | command |
//	|---|---:|---|---|
//	| Commit log: bulk, 1 KiB records in 100-record batches, fsync always | 259.30 | MB/s | `go test -run '^$' -bench '^BenchmarkBulk$' -benchtime 20x ./log/` |
//	| Commit log: same, plain file with one fdatasync per batch | 291.06 | MB/s | `go test -run '^$' -bench '^BenchmarkBulk$' -benchtime 20x ./log/` |
//	| Commit log: 64 waiting writers on 64 partitions, shared segments (default) | 109477 | acked-rec/s | `go test -run '^$' -bench '^BenchmarkManyWriters$' -benchtime 20x ./log/` |
//	| Commit log: same, journal format | 112360 | acked-rec/s | `go test -run '^$' -bench '^BenchmarkManyWriters$' -benchtime 20x ./log/` |
//	| Commit log: same, 64 files with an fdatasync each | 37171 | acked-rec/s | `go test -run '^$' -bench '^BenchmarkManyWriters$' -benchtime 20x ./log/` |
//	| Commit log: 1,000 trickling partitions at 10,000 rec/s, p50 | 5.729 | p50-ms | `go test -run '^$' -bench '^BenchmarkTrickle$' -benchtime 5x ./log/` |
//	| Commit log: same, p99 | 10.78 | p99-ms | `go test -run '^$' -bench '^BenchmarkTrickle$' -benchtime 5x ./log/` |
//	| Commit log: same, bytes written by the process per byte appended | 1.370 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickle$' -benchtime 5x ./log/` |
//	| Commit log: same, journal format, bytes per byte | 3.424 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickle$' -benchtime 5x ./log/` |
//	| Commit log: trickle on an ext4 loop device, device bytes per byte, new shared files | 2.903 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickleDevice$' -benchtime 3x ./log/` |
//	| Commit log: same, shared files reused | 1.573 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickleDevice$' -benchtime 3x ./log/` |
//	| Commit log: same with fast_commit, new shared files | 1.655 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickleDevice$' -benchtime 3x ./log/` |
//	| Commit log: same with fast_commit, shared files reused | 1.555 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickleDevice$' -benchtime 3x ./log/` |
//	| Commit log: same, journal format | 12.79 | dev-bytes/byte | `go test -run '^$' -bench '^BenchmarkTrickleDevice$' -benchtime 3x ./log/` |
//	| Commit log: sequential read from page cache | 1494.83 | MB/s | `go test -run '^$' -bench '^BenchmarkSequentialRead$' -benchtime 5x ./log/` |
//	| Commit log: open a 2 GiB log of 500 segments after an unclean stop | 898.3 | ms/open | `go test -run '^$' -bench '^BenchmarkRecovery$' -benchtime 3x ./log/` |
//	| Commit log: open 2 GiB of trickle data in shared files after an unclean stop | 177.7 | ms/open | `go test -run '^$' -bench '^BenchmarkRecoveryShared$' -benchtime 3x ./log/` |
//	| Commit log: same, heap left by the open | 7.854 | heap-MiB | `go test -run '^$' -bench '^BenchmarkRecoveryShared$' -benchtime 3x ./log/` |
//	| Forwarding: drain a 10,000,000-record backlog to Apache Kafka | 309485 | fwd-rec/s | `go test -run '^$' -bench '^BenchmarkDrain$' -benchtime 10000000x ./sync/kafka/` |
//	| Forwarding: same, / a plain franz-go producer with the same origin headers | 0.8424 | ratio-same-records | `go test -run '^$' -bench '^BenchmarkDrain$' -benchtime 10000000x ./sync/kafka/` |
//	| Forwarding: same, / a plain franz-go producer of bare records | 0.6051 | ratio | `go test -run '^$' -bench '^BenchmarkDrain$' -benchtime 10000000x ./sync/kafka/` |
//	| Forwarding: live at 10,000 rec/s, rate reached | 10001 | rec/s | `go test -run '^$' -bench '^BenchmarkLiveLatency$' -benchtime 100000x ./sync/kafka/` |
//	| Forwarding: live, p50 age at upstream acknowledgement | 20.70 | p50-ms | `go test -run '^$' -bench '^BenchmarkLiveLatency$' -benchtime 100000x ./sync/kafka/` |
//	| Forwarding: live, p99 age at upstream acknowledgement | 58.90 | p99-ms | `go test -run '^$' -bench '^BenchmarkLiveLatency$' -benchtime 100000x ./sync/kafka/` |
//	| Forwarding: bandwidth cap (1 MiB/s) reached, real Apache Kafka upstream | 97.87 | cap-% | `go test -run '^$' -bench '^BenchmarkBandwidthCap$' -benchtime 3x ./sync/kafka/` |
//
// figures:end
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
// A damaged meta.db (bbolt finds its content invalid: see meta.Open) is
// moved to meta.db.corrupt-<unix time> and a new one made, and that is
// recorded as damage (an error log line, Stats().Damaged, the
// runnel_log_damaged_files metric, runnel status): forwarding cursors,
// consumer-group offsets and MQTT sessions are lost with it. An error of
// the system opening it (permission, I/O, no space, locked) stops Open
// and changes nothing.
//
// # Leader epochs
//
// The log has a node epoch (Kafka's leader epoch, KIP-101/KIP-279), which
// Append stamps into partitionLeaderEpoch. An open after an unclean stop
// (no clean flag in ~epoch: a crash, a power cut, a Close that failed to
// sync) starts a new one: one more than the epoch in ~epoch and than every
// epoch any partition's history holds, stored before Open returns. After
// a clean Close the epoch goes on: everything it wrote is durable, so no
// copy can hold a record this log lacks. The first append of an epoch to
// a partition records (epoch, offset) in the partition's leader-epoch
// history, durably, before its batches are written. A new topic's
// partitions start with (epoch, 0) written at creation, so their first
// append writes nothing more; after an unclean stop each partition's first
// append costs one fdatasync of its history file (BenchmarkFirstAppendAfterOpen,
// 1,000 partitions appended once each from one goroutine: 760 ms for the
// first round after an unclean stop, 7 ms after a clean one, 10-30 ms for
// the next round).
// AppendAt (replication) keeps the origin's epochs and records each new
// one the same way; an epoch older than the partition's latest is refused
// (ErrStaleEpoch). A local append to a partition that already holds the
// node's epoch, or a later one, from elsewhere (a box restored from its
// mirrors) first raises the node's epoch past it, durably;
// EpochRaiser.RaiseNodeEpoch raises it explicitly (replication, past every
// epoch the site's copies hold for this node, before its first append).
// AppendAt into an empty partition (a copy that starts at its origin's log
// start) drops the entries it holds (the creation entry describes no batch)
// and takes the origin's epochs from its first batch on.
//
// So a mirror holds the same records as its origin up to the end of its
// latest epoch exactly when the origin's history says that epoch ends no
// earlier (LeaderEpochs.EpochEnd, Kafka's OffsetForLeaderEpoch): an origin
// that lost an unsynced tail restarts with a new epoch, and what it writes
// then never passes for what the mirror held.
//
// Recovery validates each scanned batch's epoch against the history, and
// drops entries past the recovered end (a lost tail). Reads check each
// batch's epoch against the history too: the four bytes are not covered by
// the CRC, and bit rot in them is refused like any other. A missing
// history (a data dir from before epochs, all batches epoch 0) or a
// damaged one is rebuilt from the batch headers: epochs never go back, so
// only segments whose first batch differs in epoch from the next
// segment's first batch are walked. In memory the history starts at the
// log start (Kafka's truncateFromStart); entries before it stay in the
// file until it is rewritten.
//
// # Truncation
//
// Truncater.Truncate (for replication only: a mirror cutting back what its
// origin no longer holds) removes every batch from an offset on. It runs on
// the committer's goroutine between two group commits, so no commit of the
// partition is in flight, and holds the partition's lock throughout:
//
//  1. checkpoint the journal (no record of the partition's bytes may be
//     replayed over the cut), make every byte of the partition durable;
//  2. shared storage: the active shared file's seal names the new end, a
//     new file takes later entries (and is synced), so "entries in files
//     up to sequence S" are exactly those written before the truncation;
//  3. the commit point: a truncation record (offset, S) appended to the
//     leader-epoch file and fdatasynced (epochs from the offset on go);
//  4. segment files after the offset are removed, the one holding it cut
//     at the batch's position and synced, a new active segment made, the
//     directory synced; virtual segments lose their runs and extents past
//     the offset (in memory: on disk the record voids them);
//  5. a recovery checkpoint with the new end, then a "done" record.
//
// Open replays the truncation records: entries of the partition in shared
// files up to S at or after the offset are void (an entry straddling it is
// cut at the batch boundary, its extents kept in memory), and seal entries
// of those files count up to the offset. A truncation without its "done"
// record is finished (step 4 again, on the files as they are: idempotent)
// and the checkpoint entry of the partition is not trusted (it may predate
// the truncation): every batch is validated. So a crash before step 3
// leaves the partition as it was, after it as truncated. New shared files
// are numbered above every S a kept record names; a record is forgotten
// once no shared file up to its S exists. Batches of epochs that AppendAt
// did not record (the node's own appends) are not truncated unless
// TruncateOptions.Local says so.
//
// # Compaction
//
// A topic with TopicConfig.Cleanup "compact" (or "compact,delete") keeps
// the latest record of every key (cleaner.go, compact.go). Its partitions
// are stored in their own segment files only: never in shared files
// (wantSharedLocked) nor through the journal, so a cleaned file can
// replace a whole segment and no replay ever writes old bytes into it.
// A topic switched to compact keeps the virtual segments it has (they are
// not cleaned) and segments with journal records wait for the journal's
// next checkpoint.
//
// One cleaner goroutine, every Options.CleanerInterval while a topic is
// compacted (without one it has no timer until a topic is created or its
// config changed), runs a pass over each compacted partition whose dirty share (bytes of segments past the
// last pass's end, over all bytes; everything after an open) reached
// MinCleanableRatio, or whose last pass is older than DeleteRetention:
//
//  1. map: every key's latest offset, over the batches up to the durable
//     end (a record that a crash could still lose never supersedes one);
//     16 bytes of SHA-256 per key. Transactional and control batches
//     neither supersede nor are removed.
//  2. for each sealed segment file, oldest first, wholly durable and
//     visible, whose largest timestamp is older than MinCompactionLag:
//     the records to keep are those without a key, the latest of their
//     key, and tombstones (null value) whose timestamp is within
//     DeleteRetention. A segment that keeps everything is not written.
//  3. the cleaned bytes go to <base>.cleaned.tmp, which is fdatasynced;
//  4. the swap, under the partition's cleanMu (readers wait; appends do
//     not) and mu: the segment's index files are removed, the temp file
//     renamed over <base>.log, the directory synced, the in-memory index
//     dropped (rebuilt from the file on first use). A segment deleted,
//     cut or truncated meanwhile (retention, drop-oldest, Truncate) makes
//     the pass give up with nothing changed.
//
// A crash before the rename leaves the old segment (the temp file is
// removed at open, as every .tmp), after it the new one; both are whole
// and valid, so recovery needs nothing of its own (TestCompactCrashAtEveryOperation
// crashes before every mutating operation of a pass, in every crash mode).
//
// Offsets never change. A batch that keeps every record is copied as it
// is. One that loses records becomes a batch per run of kept records
// (base offset of the run's first record, offset deltas from 0, the
// original codec, producer and leader epoch, base sequence advanced), and
// each run of removed offsets of one leader epoch becomes one empty
// batch (no records, lastOffsetDelta spanning the run; Kafka's
// compacted-empty batch, which clients skip):
//
//	before   [0 a=1][1 b=1][2 a=2 | 3 c=1 | 4 b=2][5 a=3]
//	after    [0-2 empty][3 c=1 | 4 b=2][5 a=3]
//
// So batches still chain (each base = previous last + 1), the first
// batch still starts at the file's base, every batch is dense (records =
// lastOffsetDelta+1, or 0), and recovery, the indexes, Check, the
// leader-epoch checks and mirrors see an ordinary segment. A mirror
// cleans its copy itself with the origin's settings; a fetch that starts
// inside an empty batch of its origin takes the part from its next
// offset (replicate). Reads hold cleanMu shared, so a read never pairs
// the old index with the new file: an offset a reader saw never comes
// back, and none it has not seen is skipped but removed ones.
//
// I/O is paced to Options.CleanerBytesPerSec (reads and writes together,
// default 4 MiB/s). Stats().Cleaner and PartitionInfo.DirtyRatio,
// LastClean report progress. BenchmarkCleanerWriteAmplification (10,000
// keys at 1,000 records/s of simulated time, 1 MiB segments, 10 minutes):
// the cleaner writes 0.53 and reads 3.5 bytes per byte appended.
//
// Caveats: cleaned segments are not merged (a partition keeps its segment
// count); the map holds every key of the partition (about 60 bytes of
// memory per key); retention by age or size does not apply under
// "compact" alone, while on-full "drop-oldest" does; a tombstone's age is
// its record timestamp (CreateTime from the producer).
//
// # Upgrades and downgrades
//
// Every file above carries its own version (the segment's batches their
// Kafka magic); Formats lists them and `runnel version` prints them. A
// newer release reads every older version of every file (Formats'
// ReadsFrom), so an upgrade is: stop, replace the binary, start; nothing is
// converted, and files are rewritten in the current version only as the
// log rewrites them anyway (a checkpoint, a rolled shared file's index).
// cmd/runnel/testdata/upgrade holds data dirs written by earlier releases;
// TestUpgradeFixtures opens each with today's code, serves every record
// and finds every group offset, cursor and MQTT session.
//
// A downgrade is safe exactly when the older binary reads every file the
// newer one wrote. The data format generation (DataFormat) decides that
// before anything is read: a release that writes a file version older
// releases would misread or reject raises DataFormat and
// DataFormatReadableFrom, and its Open records both in ~format before it
// writes anything:
//
//	 0 +---------------------------+
//	   | magic "RNLFRMT\0"         |
//	 8 | version u16 = 1           |
//	10 | flags u16 = 0             |
//	12 | highest generation that   |
//	   | opened the dir u32        |
//	16 | oldest generation that    |
//	   | can read it u32           |
//	20 | CRC-32C of [0,20) u32     |
//	24 +---------------------------+
//
// A binary whose generation is under the second number refuses the dir
// with ErrNewerFormat ("upgrade runnel"), changing nothing: never a
// misread, never a repair of what it does not understand. Going back past
// such a release needs a copy of the data dir from before the upgrade.
// A dir without a marker is generation 1. A generation that reads a dir
// it does not need to raise writes no marker, so such a dir stays at 1.
//
// The generations:
//
//   - 1: every release up to transactional produce, and the releases
//     with transactions before generation 2. No marker.
//   - 2 (this one: opens 1 and 2, refuses 3 and newer): transactions. A
//     partition's batches may carry the transactional attribute, and
//     control batches (commit and abort markers) end transactions; a
//     generation-1 reader serves them as plain records: aborted
//     transactions' records to read_committed consumers and to
//     forwarding as if committed. The first transactional batch of a
//     data dir (Append, or AppendAt: a mirror's copy of a transactional
//     origin) raises it: the marker (generation 2, readable from 2) and
//     its directory are synced, then the partition's "transactional"
//     file, then the batch is written, so no crash leaves a
//     transactional batch, acknowledged or not, in a dir generation 1
//     would open; a marker that cannot be written fails the append (no
//     batch written; ErrDiskFull when the disk is full). Open raises a
//     dir whose partitions hold the "transactional" file without the
//     marker (written by a release with transactions before generation
//     2). A dir that never held a transactional batch stays at 1 and
//     goes back to any release.
//
// Compaction (the cleaner, above) raises nothing: a cleaned segment
// holds Kafka batches of magic 2 with offset gaps inside and between
// batches (empty batches cover removed offsets) and no tombstones past
// delete.retention.ms, which every reader of segment files, and every
// Kafka client, reads as they are (the release at bd26a78, generation 1
// without the cleaner, serves a cleaned partition the same records at
// the same offsets, and its runnel check finds it sound). An older
// release does not know cleanup.policy: it treats the topic as
// cleanup.policy delete (its retention applies; no compaction).
//
// # Failures
//
// An fsync or write error makes the partition read-only (ErrReadOnly
// wrapping the cause, Stats().ReadOnly, PartitionInfo.Err): it is never
// retried-and-acknowledged (Linux may drop the dirty pages after a failed
// fsync). Waiting appends get the error; acknowledged data stays readable.
// ENOSPC on a write truncates the partial write back and returns the
// retriable ErrDiskFull; the partition stays writable. The disk guard reads
// free space (statfs) every DiskCheckInterval while appends come or space
// is short (an idle log: at its next append, or after 30 intervals): under
// MinFreeBytes, topics
// with on-full "reject" refuse appends with ErrDiskFull, "drop-oldest" ones
// delete their oldest segments, ignoring HoldRetention: one segment at a
// time, the one whose newest record is the oldest among all drop-oldest
// partitions, until free space is back above the threshold (each drop is
// a warning line with its offsets and counted in Stats().DroppedSegments,
// DroppedRecords, DroppedBytes). A reader whose segment is dropped under
// it gets ErrOffsetOutOfRange.
//
// Damage found by a read (a batch that fails its CRC or header checks) is
// recorded with its partition and offset range (Damage.Topic, Partition,
// From, To: To is the first offset of the next intact batch, found by a
// resync in a segment file; in a shared file the offset after the damaged
// entry, which the run or the file's extent index gives, not the batch
// header after it: entry CRCs are not checked by reads, so that header
// may be damaged too); reads of offsets in it answer *CorruptError, reads
// past it go on, checking the batches after it as any others (damage
// there is a range of its own). Check reports each range the same way.
// Repair (runnel repair, offline) makes a range a gap: see repair.go.
//
// Sizing to the volume (diskguard.go): Open reads the data volume's size.
// A MinFreeBytes of half the volume or more is lowered to an eighth of it,
// and segments, shared segment files and the journal roll at a sixteenth
// of what the log may fill (the volume less the threshold) when their
// configured sizes are larger; each adjustment is a warning at Open. So a
// drop frees a small step: with the default sizes on a 48 MiB volume,
// drop-oldest keeps about 43 MiB of the newest records (a 64 MiB segment
// dropped whole kept about 1 MiB).
//
// # Caveats
//
//   - File sizes are bounded, so 32-bit boxes (armv7) read every format
//     with the same code: a segment rolls at TopicConfig.SegmentBytes of
//     at most 1 GiB (its index holds u32 positions), a shared file at
//     Options.SharedSegmentBytes of at most 256 MiB and the journal at
//     Options.JournalMaxBytes of at most 256 MiB (open may read either
//     whole into memory), each plus at most one commit. Offsets, positions
//     and partition sizes are int64 everywhere, so a partition or a data
//     dir grows past 4 GiB on any box. A file read whole at open that is
//     larger than 1 GiB is reported as ErrCorrupt naming it, never read.
//   - Segment handles are cached in an LRU (Options.MaxOpenFiles, default
//     256: 5,000 partitions run under ulimit -n 1024); a sync may use a
//     different handle than the write (fsync applies to the inode).
//   - Running out of descriptors (EMFILE, ENFILE) is not a storage fault:
//     an open that fails so first closes the cache's idle handles and
//     tries again; an append that still cannot open what it needs fails
//     with ErrTooManyOpenFiles (nothing written; a roll creates the new
//     segment file before it changes anything), a commit that cannot open
//     a file or directory for its sync is retried every 50 ms (its
//     appends fail with ErrTooManyOpenFiles after 5 s, as a timed-out
//     Kafka produce: the bytes may still become durable), and a journal
//     checkpoint that cannot open a segment keeps the journal. Nothing
//     goes read-only; Stats().OutOfFiles counts the failed opens.
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
//   - Transaction state (log.Transactions: open and aborted transactions
//     per partition, from the batches' transactional and control attribute
//     bits and the markers' keys) is not stored: it is rebuilt from the
//     batch headers of the whole partition the first time it is asked
//     after an open or a truncation (held under the partition's lock, so
//     appends to that partition wait during the scan), then kept by every
//     append. A partition without the "transactional" file never held a
//     transactional batch and is not scanned. The aborted list grows with
//     the aborts the partition still retains.
//   - Shared storage keeps about 100 bytes of memory per (shared file,
//     partition with entries in it): with many more partitions than a
//     32 MiB file holds entries per partition (~180,000 entries of 176
//     bytes), runs hold few entries and the cost per byte grows (10,000
//     partitions: ~3%). Open reads the index directory of every retained
//     shared file (60 bytes per partition per file).
//   - A shared file stays on disk while any partition retains a batch in
//     it: one long-retention partition with a trickle pins the files of
//     short-retention ones (space, not correctness). Copying such batches
//     forward would write them twice; not done.
//   - A new shared file grows with every commit, so each fdatasync also
//     commits the inode's new size and block allocation in ext4's journal
//     (jbd2): writes by the kernel's journal thread that /proc/self/io
//     write_bytes does not count. Until retention frees shared files for
//     reuse (see "Device bytes" above) the device sees about 3 bytes per
//     byte, not 1.4; mounting with fast_commit brings that to 1.6.
//     Writing zeros ahead of the writer gives 2.6, and the zeros are
//     written too; not done.
//   - Writes to shared files happen under one mutex (one WriteAt each;
//     the entry is built before taking it).
//   - The journal format (NoSharedSegments): when the journal fills (32
//     MiB) every journaled segment file is fdatasynced while commits
//     wait. With 1,000 trickling partitions that put p99 at 630-840 ms in
//     15-30 s runs of BenchmarkTrickleDevice; the 1-3 s
//     benchmarks never reach a rotation. The default format journals only
//     a partition's first small commits after bulk ones.
package log
