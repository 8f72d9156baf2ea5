package log

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs"
)

// topic is a named set of partitions with one config.
type topic struct {
	name string
	dir  string
	id   uint64 // incarnation id (config.json)

	mu    sync.RWMutex // guards user, cfg, parts
	user  TopicConfig  // as configured (zero fields = log default)
	cfg   TopicConfig  // user filled with defaults
	parts []*partition
}

func (t *topic) config() TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cfg
}

func (t *topic) partitions() []*partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*partition(nil), t.parts...)
}

func (t *topic) partition(id int32) (*partition, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id < 0 || int(id) >= len(t.parts) {
		return nil, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, t.name, id)
	}
	return t.parts[id], nil
}

func (t *topic) info() TopicInfo {
	t.mu.RLock()
	ti := TopicInfo{Name: t.name, Config: t.cfg}
	parts := append([]*partition(nil), t.parts...)
	t.mu.RUnlock()
	ti.Config.Partitions = int32(len(parts))
	for _, p := range parts {
		pi := p.info()
		if ti.Config.Compacted() {
			pi.DirtyRatio = p.dirtyRatio()
		}
		ti.Partitions = append(ti.Partitions, pi)
	}
	return ti
}

func (l *logImpl) topic(name string) (*topic, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t, ok := l.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return t, nil
}

func (l *logImpl) part(name string, id int32) (*partition, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	t, err := l.topic(name)
	if err != nil {
		return nil, err
	}
	return t.partition(id)
}

func (l *logImpl) topicList() []*topic {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*topic, 0, len(l.topics))
	for _, t := range l.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// CreateTopic implements Log.
func (l *logImpl) CreateTopic(name string, cfg TopicConfig) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if !ValidTopicName(name) || reservedName(name) {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	if err := validateConfig(cfg, false); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[name]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	t := &topic{name: name, dir: filepath.Join(l.dir, name), id: newTopicID(), user: cfg, cfg: fillConfig(cfg, l.opts.Defaults)}
	stored := cfg
	stored.Partitions = t.cfg.Partitions
	// Build the topic under a temporary name and rename it into place, so
	// a crash leaves either no topic or all of it.
	tmp := filepath.Join(l.dir, transientName(creatingPrefix, t.id))
	if err := l.buildTopicDir(tmp, stored, t.id); err != nil {
		l.fs.RemoveAll(tmp)
		return fmt.Errorf("log: create topic %s: %w", name, err)
	}
	if err := l.fs.Rename(tmp, t.dir); err != nil {
		l.fs.RemoveAll(tmp)
		return fmt.Errorf("log: create topic %s: %w", name, err)
	}
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		return fmt.Errorf("log: sync %s: %w", l.dir, err)
	}
	for i := int32(0); i < t.cfg.Partitions; i++ {
		p, err := l.openPartition(t, i, nil)
		if err != nil {
			for _, p := range t.parts {
				p.close()
			}
			return err
		}
		t.parts = append(t.parts, p)
	}
	if err := l.meta.PutTopic(name, encodeConfig(stored, false, t.id)); err != nil {
		return fmt.Errorf("log: store topic %s: %w", name, err)
	}
	l.topics[name] = t
	l.topicsChanged()
	l.kickCleaner()
	l.logger.Info("log: topic created", "topic", name, "partitions", t.cfg.Partitions)
	return nil
}

// DeleteTopic implements Log.
func (l *logImpl) DeleteTopic(name string) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.mu.Lock()
	t, ok := l.topics[name]
	if !ok {
		l.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	delete(l.topics, name)
	l.mu.Unlock()
	for _, p := range t.partitions() {
		p.close()
		p.mu.Lock()
		for _, s := range p.segs {
			if s.virt != nil && !s.deleted {
				s.deleted = true
				l.shared.release(s.sharedFiles())
			}
		}
		p.mu.Unlock()
	}
	// Rename first: a crash then leaves a directory open removes, never
	// half a topic.
	gone := filepath.Join(l.dir, transientName(deletingPrefix, t.id))
	if err := l.fs.Rename(t.dir, gone); err != nil {
		return fmt.Errorf("log: delete topic %s: %w", name, err)
	}
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		return fmt.Errorf("log: delete topic %s: %w", name, err)
	}
	if l.journal != nil {
		// The journal must not replay old records into a new topic of the
		// same name: checkpoint it now.
		if err := l.journal.rotate(); err != nil {
			l.logger.Warn("log: journal checkpoint before topic delete failed", "topic", name, "err", err)
		}
	}
	if err := l.meta.DeleteTopic(name); err != nil {
		return fmt.Errorf("log: delete topic %s from meta: %w", name, err)
	}
	if err := l.fs.RemoveAll(gone); err != nil {
		return fmt.Errorf("log: delete topic %s: %w", name, err)
	}
	vfs.SyncDir(l.fs, l.dir)
	l.shared.collect()
	l.topicsChanged()
	l.logger.Info("log: topic deleted", "topic", name)
	return nil
}

// AddPartitions implements Log.
func (l *logImpl) AddPartitions(name string, total int32) error {
	if l.closed.Load() {
		return ErrClosed
	}
	t, err := l.topic(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if total <= int32(len(t.parts)) || total > MaxPartitions {
		return fmt.Errorf("%w: %d (topic has %d, at most %d)", ErrInvalidPartitions, total, len(t.parts), MaxPartitions)
	}
	for i := int32(len(t.parts)); i < total; i++ {
		p, err := l.openPartition(t, i, nil)
		if err != nil {
			return err
		}
		t.parts = append(t.parts, p)
	}
	if err := vfs.SyncDir(l.fs, t.dir); err != nil {
		return fmt.Errorf("log: sync %s: %w", t.dir, err)
	}
	stored := t.user
	stored.Partitions = total
	t.user.Partitions = total
	t.cfg.Partitions = total
	if err := writeFileAtomic(l.fs, filepath.Join(t.dir, topicConfigName), encodeConfig(stored, false, t.id)); err != nil {
		return fmt.Errorf("log: store topic %s: %w", name, err)
	}
	if err := l.meta.PutTopic(name, encodeConfig(stored, false, t.id)); err != nil {
		return fmt.Errorf("log: store topic %s: %w", name, err)
	}
	l.topicsChanged()
	return nil
}

// SetTopicConfig implements Log.
func (l *logImpl) SetTopicConfig(name string, cfg TopicConfig) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if err := validateConfig(cfg, false); err != nil {
		return err
	}
	t, err := l.topic(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cfg.Partitions = int32(len(t.parts))
	cfg.Origin = t.user.Origin // a mirror stays one
	if err := writeFileAtomic(l.fs, filepath.Join(t.dir, topicConfigName), encodeConfig(cfg, false, t.id)); err != nil {
		return fmt.Errorf("log: store topic %s: %w", name, err)
	}
	if err := l.meta.PutTopic(name, encodeConfig(cfg, false, t.id)); err != nil {
		return fmt.Errorf("log: store topic %s: %w", name, err)
	}
	t.user = cfg
	t.cfg = fillConfig(cfg, l.opts.Defaults)
	l.kickCleaner()
	return nil
}

// Topic implements Log.
func (l *logImpl) Topic(name string) (TopicInfo, error) {
	t, err := l.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	return t.info(), nil
}

// Topics implements Log.
func (l *logImpl) Topics() []TopicInfo {
	var out []TopicInfo
	for _, t := range l.topicList() {
		out = append(out, t.info())
	}
	return out
}

// loadTopics opens every topic found in meta or on disk. Topics on disk
// without a meta record (lost or damaged meta.db) get the defaults and as
// many partitions as there are partition directories; meta records without
// directories get empty partitions.
func (l *logImpl) loadTopics(ck *checkpoint) error {
	stored, err := l.meta.Topics()
	if err != nil {
		return fmt.Errorf("log: read topics from meta: %w", err)
	}
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("log: list %s: %w", l.dir, err)
	}
	onDisk := map[string]int32{}
	for _, n := range names {
		if strings.HasPrefix(n, creatingPrefix) || strings.HasPrefix(n, deletingPrefix) ||
			strings.HasSuffix(n, creatingSuffix) || strings.HasSuffix(n, deletingSuffix) {
			if err := l.fs.RemoveAll(filepath.Join(l.dir, n)); err != nil {
				return fmt.Errorf("log: remove %s: %w", n, err)
			}
			continue
		}
		if !ValidTopicName(n) {
			continue
		}
		st, err := l.fs.Stat(filepath.Join(l.dir, n))
		if err != nil || !st.IsDir() {
			continue
		}
		parts, _ := l.fs.List(filepath.Join(l.dir, n))
		max := int32(0)
		for _, pn := range parts {
			if v, err := strconv.Atoi(pn); err == nil && v >= 0 && strconv.Itoa(v) == pn && int32(v)+1 > max {
				max = int32(v) + 1
			}
		}
		onDisk[n] = max
	}
	all := map[string]bool{}
	for n := range stored {
		all[n] = true
	}
	for n := range onDisk {
		all[n] = true
	}
	for name := range all {
		var cfg TopicConfig
		rebuilt := false
		if b, ok := stored[name]; ok {
			if cfg, err = decodeConfig(b); err != nil || validateConfig(cfg, false) != nil {
				l.logger.Warn("log: bad topic config in meta; using defaults", "topic", name, "err", err)
				cfg, rebuilt = TopicConfig{}, true
			}
		} else {
			rebuilt = true
		}
		// The topic's own config.json names its incarnation (and is the
		// config when meta lost it).
		var id uint64
		fileCfg := false
		if b, err := readWhole(l.fs, filepath.Join(l.dir, name, topicConfigName)); err == nil {
			if c, fid, err := decodeConfigID(b); err == nil && validateConfig(c, false) == nil {
				id, fileCfg = fid, true
				if rebuilt {
					cfg = c
				}
			}
		}
		if n := onDisk[name]; n > cfg.Partitions {
			cfg.Partitions = n
		}
		if cfg.Partitions == 0 {
			cfg.Partitions = l.opts.Defaults.Partitions
		}
		if !ValidTopicName(name) {
			continue
		}
		if id == 0 {
			id = newTopicID()
		}
		t := &topic{name: name, dir: filepath.Join(l.dir, name), id: id, user: cfg, cfg: fillConfig(cfg, l.opts.Defaults)}
		if err := mkdirAllSynced(l.fs, t.dir); err != nil {
			return fmt.Errorf("log: topic dir %s: %w", name, err)
		}
		if !fileCfg {
			if err := writeFileAtomic(l.fs, filepath.Join(t.dir, topicConfigName), encodeConfig(cfg, rebuilt, id)); err != nil {
				return fmt.Errorf("log: topic config %s: %w", name, err)
			}
		}
		for i := int32(0); i < cfg.Partitions; i++ {
			p, err := l.openPartition(t, i, ck)
			if err != nil {
				return err
			}
			t.parts = append(t.parts, p)
		}
		if rebuilt {
			l.logger.Warn("log: topic config rebuilt from files", "topic", name, "partitions", cfg.Partitions)
			if err := l.meta.PutTopic(name, encodeConfig(cfg, true, id)); err != nil {
				return fmt.Errorf("log: store topic %s: %w", name, err)
			}
		}
		l.topics[name] = t
	}
	return nil
}

// Names inside the data directory. Never change.
const (
	// A topic being created or deleted: the prefix and the topic id
	// ('~' is not valid in topic names). The name does not grow with
	// the topic's, so every valid topic name (up to 249 bytes) fits in
	// a file name of 255.
	creatingPrefix = "~creating-"
	deletingPrefix = "~deleting-"
	// The same, as <topic>~creating and <topic>~deleting: written by
	// earlier versions, still removed at open.
	creatingSuffix  = "~creating"
	deletingSuffix  = "~deleting"
	topicConfigName = "config.json"
)

// transientName names the directory of a topic being created or deleted.
func transientName(prefix string, id uint64) string {
	return prefix + strconv.FormatUint(id, 16)
}

// reservedName reports names the data directory uses for its own files.
func reservedName(name string) bool {
	return name == sharedDirName || name == journalName || strings.HasPrefix(name, journalKeepPrefix) || name == checkpointName || strings.HasPrefix(name, checkpointName+".") ||
		strings.HasPrefix(name, meta.FileName) || name == LockFileName
}

// LockFileName is the file in the data directory that `runnel serve`
// holds an exclusive flock on, so two processes never share a data dir. It
// is reserved: no topic may have this name.
const LockFileName = "LOCK"

// buildTopicDir creates a complete, synced topic directory at dir: the
// config file and every partition with an empty first segment.
func (l *logImpl) buildTopicDir(dir string, cfg TopicConfig, id uint64) error {
	l.fs.RemoveAll(dir)
	if err := mkdirAllSynced(l.fs, dir); err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, filepath.Join(dir, topicConfigName), encodeConfig(cfg, false, id)); err != nil {
		return err
	}
	for i := int32(0); i < cfg.Partitions; i++ {
		pd := filepath.Join(dir, strconv.Itoa(int(i)))
		if err := l.fs.MkdirAll(pd, 0o755); err != nil {
			return err
		}
		f, err := l.fs.Create(filepath.Join(pd, segmentName(0)))
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		// The epoch history starts with this node's epoch at offset 0,
		// so the partition's first append has nothing to write there. A
		// mirror's starts empty: its epochs are the origin's, recorded by
		// AppendAt (the origin's may be older than this node's, and its
		// log may start past 0).
		var initial []epochEntry
		if cfg.Origin == "" {
			initial = []epochEntry{{epoch: l.epoch.Load()}}
		}
		if err := writeInitialEpochs(l.fs, pd, initial); err != nil {
			return err
		}
		if err := vfs.SyncDir(l.fs, pd); err != nil {
			return err
		}
	}
	return vfs.SyncDir(l.fs, dir)
}

// writeFileAtomic writes path through a synced temp file and a rename.
func writeFileAtomic(fs vfs.FS, path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		fs.Remove(tmp)
		return err
	}
	return vfs.SyncDir(fs, filepath.Dir(path))
}
