package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs"
)

// logImpl is the Log implementation.
type logImpl struct {
	opts      Options // with defaults filled
	fs        vfs.FS
	dir       string
	logger    *slog.Logger
	meta      *meta.Store
	files     *fileCache
	indexes   *indexCache
	committer *committer
	journal   *journal   // nil when disabled
	shared    *sharedLog // nil with Options.NoSharedSegments
	ckptMu    sync.Mutex // serializes writeCheckpoint
	stats     counters
	// The cleaner of compacted topics (cleaner.go).
	cleanerCtr  cleanerCounters
	cleanerRate rateLimiter
	closed      atomic.Bool
	diskShort   atomic.Bool
	// maxPID is the highest producer id in any partition's idempotence
	// state (ProducerIDFloor).
	maxPID atomic.Int64

	outOfFilesLogged atomic.Int64 // unix nanos of the last "out of file descriptors" line

	// Set by sizeToVolume at Open (diskguard.go), then read-only.
	minFree int64 // the disk guard threshold in use (<0: no guard)
	unitCap int64 // cap on segment, shared file and journal roll sizes (0: none)

	epoch   atomic.Int32 // the node's epoch: local appends stamp it (epoch.go)
	epochMu sync.Mutex   // serializes raises of epoch (and its file)

	// format is what the data dir's ~format says (generation 1 without
	// one); formatMu guards it and serializes raises (format.go).
	formatMu sync.Mutex
	format   dataFormat

	mu     sync.RWMutex // guards topics
	topics map[string]*topic

	appends    WatchList  // loops asleep until the next append; values are stats.appendedBatches
	topicWatch WatchList  // WatchTopics registrations
	topicVerMu sync.Mutex // guards topicVer
	topicVer   int64      // bumped by every change of the topic set

	damageMu sync.Mutex // guards damaged
	damaged  []Damage

	holdMu sync.Mutex // guards holds
	holds  map[string]bool

	closeOnce sync.Once
	closeErr  error
	ckptKick  chan struct{}  // one-slot: write a checkpoint soon
	cleanKick chan struct{}  // one-slot: a topic may have turned compacted
	quit      chan struct{}  // closed by Close to stop background goroutines
	wg        sync.WaitGroup // background goroutines
}

// Open opens (creating if needed) the log in opts.Dir, recovering from an
// unclean stop: only data past the recovery checkpoint is scanned, torn
// tails are truncated and damage is reported in Stats().Damaged.
func Open(opts *Options) (Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	l := &logImpl{
		cleanerRate: rateLimiter{rate: o.CleanerBytesPerSec},
		opts:        o,
		fs:          o.FS,
		dir:         o.Dir,
		logger:      o.Logger,
		topics:      map[string]*topic{},
		holds:       map[string]bool{},
		quit:        make(chan struct{}),
		ckptKick:    make(chan struct{}, 1),
		cleanKick:   make(chan struct{}, 1),
	}
	if err := mkdirAllSynced(l.fs, o.Dir); err != nil {
		return nil, fmt.Errorf("log: create %s: %w", o.Dir, err)
	}
	format, err := openDataFormat(l.fs, o.Dir, DataFormat, DataFormatReadableFrom)
	if err != nil {
		return nil, err
	}
	l.format = format
	m, err := meta.Open(o.Dir)
	if err != nil {
		return nil, err
	}
	l.meta = m
	if movedTo, why := m.Damaged(); movedTo != "" {
		// Loud: an error log line, Stats().Damaged, the damaged-files
		// metric and runnel status all show it.
		rel, _ := filepath.Rel(o.Dir, movedTo)
		l.addDamage(Damage{File: meta.FileName, Reason: fmt.Sprintf(
			"%v; moved to %s and a new one created: forwarding cursors (routes start over from their start position), consumer-group offsets and MQTT sessions are lost; topics are rebuilt from their files", why, rel)})
	}
	l.files = newFileCache(l.fs, o.MaxOpenFiles, &l.stats.outOfFiles)
	l.sizeToVolume()
	l.indexes = newIndexCache(o.MaxLoadedIndexes)
	l.committer = newCommitter(l)
	ck, err := readCheckpoint(l.fs, o.Dir)
	if err != nil {
		l.logger.Warn("log: recovery checkpoint unusable; scanning every segment", "err", err)
		ck = nil
	}
	if !o.NoJournal {
		if err := l.replayJournal(); err != nil {
			m.Close()
			return nil, err
		}
	}
	if o.NoSharedSegments && hasSharedFiles(l.fs, o.Dir) {
		// Written with shared segments on: without them those batches
		// would be invisible and their offsets reused. They stay on.
		l.logger.Warn("log: the data dir holds shared segment files; shared segments stay on", "dir", sharedDirName)
		o.NoSharedSegments = false
	}
	if !o.NoSharedSegments {
		s, err := openShared(l, ck)
		if err != nil {
			m.Close()
			return nil, err
		}
		l.shared = s
	}
	if err := l.loadTopics(ck); err != nil {
		l.files.closeAll()
		m.Close()
		return nil, err
	}
	if l.shared != nil {
		l.shared.found = nil // entries of deleted topics: no references
	}
	if err := l.raiseDataFormatForTxns(); err != nil {
		l.files.closeAll()
		m.Close()
		return nil, err
	}
	if err := l.openEpoch(); err != nil {
		l.files.closeAll()
		m.Close()
		return nil, err
	}
	if err := l.shared.skipPast(l.truncatedSharedSeq()); err != nil {
		l.files.closeAll()
		m.Close()
		return nil, err
	}
	if !o.NoJournal {
		j, err := openJournal(l)
		if err != nil {
			l.files.closeAll()
			m.Close()
			return nil, err
		}
		l.journal = j
	}
	// A fresh checkpoint right away: the recovered state is durable.
	if err := l.writeCheckpoint(); err != nil {
		l.logger.Warn("log: cannot write recovery checkpoint", "err", err)
	}
	l.shared.collect()
	l.checkDisk() // the guard holds from the first append
	l.start()
	return l, nil
}

// start launches the background goroutines; Close stops them.
func (l *logImpl) start() {
	l.wg.Add(5)
	go func() { defer l.wg.Done(); l.cleanerLoop() }()
	go func() { defer l.wg.Done(); l.committer.run() }()
	go func() { defer l.wg.Done(); l.checkpointLoop() }()
	go func() { defer l.wg.Done(); l.retentionLoop() }()
	go func() { defer l.wg.Done(); l.diskGuardLoop() }()
}

// Close implements Log.
func (l *logImpl) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		l.wg.Wait() // the committer syncs and acknowledges everything on its way out
		var errs []error
		if l.journal != nil {
			if err := l.journal.close(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, t := range l.topicList() {
			for _, p := range t.partitions() {
				p.close()
			}
		}
		l.shared.indexActive()
		if err := l.writeCheckpoint(); err != nil {
			errs = append(errs, fmt.Errorf("log: write checkpoint: %w", err))
		}
		if err := l.shared.close(); err != nil {
			errs = append(errs, err)
		}
		l.files.closeAll()
		if len(errs) == 0 {
			l.closeEpoch()
		}
		if err := l.meta.Close(); err != nil {
			errs = append(errs, err)
		}
		l.topicWatch.Close()
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// Meta implements Log.
func (l *logImpl) Meta() *meta.Store { return l.meta }

// HoldRetention implements Log.
func (l *logImpl) HoldRetention(name string) {
	l.holdMu.Lock()
	l.holds[name] = true
	l.holdMu.Unlock()
}

func validateBatches(data []byte) ([]batch.Header, error) {
	hdrs, err := batch.ValidateAll(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptBatch, err)
	}
	return hdrs, nil
}

// Append implements Log.
func (l *logImpl) Append(ctx context.Context, topic string, partition int32, batches []byte) (int64, error) {
	return l.appendWait(ctx, topic, partition, batches, false)
}

// AppendAt implements Log.
func (l *logImpl) AppendAt(ctx context.Context, topic string, partition int32, batches []byte) error {
	_, err := l.appendWait(ctx, topic, partition, batches, true)
	return err
}

type appendResult struct {
	base int64
	err  error
}

func (l *logImpl) appendWait(ctx context.Context, topic string, partition int32, batches []byte, at bool) (int64, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return -1, err
	}
	hdrs, err := validateBatches(batches)
	if err != nil {
		return -1, err
	}
	ch := make(chan appendResult, 1)
	// AppendAt's caller (a mirror copying its origin) is one writer that
	// waits for each acknowledgement before it fetches more: awaited.
	base, err, queued := p.submit(batches, hdrs, at, func(b int64, e error) { ch <- appendResult{b, e} }, true, at)
	if !queued {
		return base, err
	}
	select {
	case r := <-ch:
		return r.base, r.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// AppendAsync implements Log.
func (l *logImpl) AppendAsync(topic string, partition int32, batches []byte, done func(base int64, err error)) {
	l.appendAsync(topic, partition, batches, done, false)
}

// AppendAsyncAwaited implements AwaitedAppender.
func (l *logImpl) AppendAsyncAwaited(topic string, partition int32, batches []byte, done func(base int64, err error)) {
	l.appendAsync(topic, partition, batches, done, true)
}

func (l *logImpl) appendAsync(topic string, partition int32, batches []byte, done func(base int64, err error), awaited bool) {
	if done == nil {
		done = func(int64, error) {}
	}
	p, err := l.part(topic, partition)
	if err != nil {
		if l.closed.Load() {
			done(-1, ErrClosed) // the committer may be gone
			return
		}
		l.committer.deliverLater(func() { done(-1, err) })
		return
	}
	hdrs, verr := validateBatches(batches)
	p.submitErr(batches, hdrs, verr, done, awaited)
}

// AppendAtAsync implements AtAppender.
func (l *logImpl) AppendAtAsync(topic string, partition int32, batches []byte, done func(err error)) {
	if done == nil {
		done = func(error) {}
	}
	p, err := l.part(topic, partition)
	if err != nil {
		if l.closed.Load() {
			done(ErrClosed)
			return
		}
		l.committer.deliverLater(func() { done(err) })
		return
	}
	hdrs, err := validateBatches(batches)
	if err != nil {
		l.committer.deliverLater(func() { done(err) })
		return
	}
	p.submit(batches, hdrs, true, func(_ int64, err error) { done(err) }, false, true)
}

// FeedNextCommit implements CommitFeeder.
func (l *logImpl) FeedNextCommit(topic string, partition int32, feed func()) bool {
	p, err := l.part(topic, partition)
	if err != nil {
		return false
	}
	p.fed.Store(true)
	return l.committer.feedNext(feed)
}

// Gathering implements CommitFeeder.
func (l *logImpl) Gathering(n int, independent bool) { l.committer.gathering(n, independent) }

// Read implements Log.
func (l *logImpl) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return nil, err
	}
	return p.read(offset, maxBytes)
}

// Offsets implements Log.
func (l *logImpl) Offsets(topic string, partition int32) (int64, int64, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	s, h := p.offsets()
	return s, h, nil
}

// OffsetForTime implements Log.
func (l *logImpl) OffsetForTime(topic string, partition int32, ts int64) (int64, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return 0, err
	}
	return p.offsetForTime(ts)
}

// mkdirAllSynced creates dir and any missing parents, syncing the parent
// of each directory it creates so the new entries survive a power cut.
func mkdirAllSynced(fs vfs.FS, dir string) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := vfs.SyncDir(fs, filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
