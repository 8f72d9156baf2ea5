// Package meta is runnel's metadata store: one bbolt file (meta.db) in the
// data directory holding topic configs, consumer-group offsets, named cursors
// (forwarding and replication progress), the node identity, and small
// key/value buckets for other components (MQTT sessions and retained
// messages).
//
// Everything here that can be rebuilt from segments (the topic list) is
// rebuilt by the log when the file is lost or damaged; group offsets and
// cursors are progress markers whose loss means re-reading, never data loss.
// Only damage leads to a new file (see Open): an error of the system
// (permission, I/O, no space) stops Open and leaves the file as it is.
//
// Buckets (never rename):
//
//	node      "id" → node id
//	topics    name → JSON topic config
//	groups    group \x00 topic \x00 be32(partition) → be64(offset) + metadata
//	cursors   name \x00 topic \x00 be32(partition) → be64(offset)
//	kv/<name> caller-defined
package meta

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketNode    = []byte("node")
	bucketTopics  = []byte("topics")
	bucketGroups  = []byte("groups")
	bucketCursors = []byte("cursors")
	kvPrefix      = "kv/"
)

// Store is the metadata store. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string

	// Set by Open when it found the file damaged; read-only after.
	movedTo string // where the damaged file went
	damage  error  // why it was damaged
}

// FileName is the store's file name inside the data directory.
const FileName = "meta.db"

// Open opens (creating if needed) dir/meta.db.
//
// A damaged file (ErrDamaged: not a bbolt file, bad meta page checksums, a
// structure bbolt's consistency check rejects) is renamed to
// meta.db.corrupt-<unix time> and a fresh one is created; Damaged then says
// where it went and why, and the caller must report it (the log records it
// as damage: log line, metrics, status) and rebuild what it can. Any other
// error (locked by another process, permission denied, an I/O error, no
// space) is returned and the file is left as it is: those are the
// system's, not the file's, and a new file would silently drop forwarding
// cursors, consumer-group offsets and MQTT sessions.
func Open(dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	s, err := open(path)
	if err == nil {
		return s, nil
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("meta: %s is locked by another process", path)
	}
	if !errors.Is(err, ErrDamaged) {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			return nil, fmt.Errorf("meta: %w", err) // names the path already
		}
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("meta: %w (and cannot move it aside: %v)", err, rerr)
	}
	s, err2 := open(path)
	if err2 != nil {
		return nil, fmt.Errorf("meta: recreate %s after moving the damaged file to %s: %w", path, aside, err2)
	}
	s.movedTo, s.damage = aside, err
	return s, nil
}

// Damaged reports what Open found: the path the damaged file was moved to
// and the damage, or "" and nil when the file opened intact (or was new).
func (s *Store) Damaged() (movedTo string, damage error) { return s.movedTo, s.damage }

// open opens path; an error wraps ErrDamaged only when the file's content
// is at fault.
func open(path string) (s *Store, err error) {
	if err := probe(path); err != nil {
		return nil, err
	}
	defer func() {
		// bbolt panics on some kinds of damage; turn that into an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrDamaged, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if isDamage(err) {
			return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
		}
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNode, bucketTopics, bucketGroups, bucketCursors} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		// A cheap consistency pass so damage shows up now, not later.
		err = db.View(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				return fmt.Errorf("%w: %s: %v", ErrDamaged, path, e)
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// probe opens an existing path for reading and writing and reads its first
// pages (bbolt's meta pages), so an error of the system is seen as what it
// is: bbolt reports a failed read of its meta pages as ErrInvalid, the
// same as a file that is not a bbolt file.
func probe(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // created by bbolt
	}
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 8<<10) // both meta pages at a 4 KiB page size
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// isDamage reports whether an error of bolt.Open is the file's content:
// bbolt's format errors. An error carrying an errno or a path (the system
// refused or failed an operation) never is.
func isDamage(err error) bool {
	var errno syscall.Errno
	var pe *fs.PathError
	if errors.As(err, &errno) || errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) ||
		// A file cut short below its two meta pages (bbolt's message).
		strings.HasPrefix(err.Error(), "file size too small")
}

// Close closes the file. Idempotent.
func (s *Store) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	return s.db.Close()
}

// NodeID returns the node id, generating and storing a random one on first
// use, unless want is non-empty, in which case want is stored and returned.
func (s *Store) NodeID(want string) (string, error) {
	var id string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNode)
		if want != "" {
			id = want
			return b.Put([]byte("id"), []byte(want))
		}
		if v := b.Get([]byte("id")); v != nil {
			id = string(v)
			return nil
		}
		var r [6]byte
		if _, err := rand.Read(r[:]); err != nil {
			return err
		}
		id = "runnel-" + hex.EncodeToString(r[:])
		return b.Put([]byte("id"), []byte(id))
	})
	return id, err
}

// PutTopic stores a topic's encoded config.
func (s *Store) PutTopic(name string, cfg []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTopics).Put([]byte(name), cfg) })
}

// DeleteTopic removes a topic's config and every cursor and group offset of
// that topic.
func (s *Store) DeleteTopic(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTopics).Delete([]byte(name)); err != nil {
			return err
		}
		for _, bn := range [][]byte{bucketGroups, bucketCursors} {
			b := tx.Bucket(bn)
			var dead [][]byte
			b.ForEach(func(k, _ []byte) error {
				if _, t, _, ok := splitKey(k); ok && t == name {
					dead = append(dead, append([]byte(nil), k...))
				}
				return nil
			})
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Topics returns every stored topic config by name.
func (s *Store) Topics() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// GroupOffset is a committed consumer-group offset.
type GroupOffset struct {
	Offset   int64
	Metadata string
}

// GroupOffsets returns every committed offset of group.
func (s *Store) GroupOffsets(group string) (map[TopicPartition]GroupOffset, error) {
	out := map[TopicPartition]GroupOffset{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketGroups).Cursor()
		pfx := append([]byte(group), 0)
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			_, t, p, ok := splitKey(k)
			if !ok || len(v) < 8 {
				continue
			}
			out[TopicPartition{t, p}] = GroupOffset{Offset: int64(binary.BigEndian.Uint64(v)), Metadata: string(v[8:])}
		}
		return nil
	})
	return out, err
}

// Groups lists every group with committed offsets.
func (s *Store) Groups() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		last, any := "", false
		return tx.Bucket(bucketGroups).ForEach(func(k, _ []byte) error {
			if g, _, _, ok := splitKey(k); ok && (!any || g != last) {
				out = append(out, g)
				last, any = g, true
			}
			return nil
		})
	})
	return out, err
}

// DeleteGroup removes every committed offset of group.
func (s *Store) DeleteGroup(group string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		c := b.Cursor()
		pfx := append([]byte(group), 0)
		for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Seek(pfx) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetCursor stores a named cursor: the next offset to process for
// (name, topic, partition).
func (s *Store) SetCursor(name, topic string, partition int32, offset int64) error {
	return s.SetCursors(name, map[TopicPartition]int64{{topic, partition}: offset})
}

// SetCursors stores several cursors of one name in one transaction.
func (s *Store) SetCursors(name string, offs map[TopicPartition]int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		for tp, o := range offs {
			if err := b.Put(makeKey(name, tp.Topic, tp.Partition), binary.BigEndian.AppendUint64(nil, uint64(o))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Cursor returns a named cursor; ok is false when none is stored.
func (s *Store) Cursor(name, topic string, partition int32) (offset int64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCursors).Get(makeKey(name, topic, partition))
		if len(v) == 8 {
			offset, ok = int64(binary.BigEndian.Uint64(v)), true
		}
		return nil
	})
	return offset, ok, err
}

// Cursors returns every cursor stored under name.
func (s *Store) Cursors(name string) (map[TopicPartition]int64, error) {
	out := map[TopicPartition]int64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCursors).Cursor()
		pfx := append([]byte(name), 0)
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			if _, t, p, ok := splitKey(k); ok && len(v) == 8 {
				out[TopicPartition{t, p}] = int64(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	return out, err
}

// DeleteCursor removes one named cursor (none stored is not an error).
func (s *Store) DeleteCursor(name, topic string, partition int32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Delete(makeKey(name, topic, partition))
	})
}

// DeleteCursors removes every cursor stored under name.
func (s *Store) DeleteCursors(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		c := b.Cursor()
		pfx := append([]byte(name), 0)
		for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Seek(pfx) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// KVWrite is one change to a KV bucket: Value nil deletes Key.
type KVWrite struct {
	Key   string
	Value []byte
}

// KVApply applies writes to the caller-defined bucket in one transaction
// (one fsync), so callers batch their changes.
func (s *Store) KVApply(bucket string, writes []KVWrite) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(kvPrefix + bucket))
		if err != nil {
			return err
		}
		for _, w := range writes {
			if w.Value == nil {
				err = b.Delete([]byte(w.Key))
			} else {
				err = b.Put([]byte(w.Key), w.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// KVGet returns a copy of key's value in a caller-defined bucket (nil:
// no such key).
func (s *Store) KVGet(bucket, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(kvPrefix + bucket)); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				out = append([]byte{}, v...)
			}
		}
		return nil
	})
	return out, err
}

// KVForEach calls fn for every key of a caller-defined bucket. The value
// slice is only valid during the call.
func (s *Store) KVForEach(bucket string, fn func(key string, value []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kvPrefix + bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}

func makeKey(a, topic string, partition int32) []byte {
	k := make([]byte, 0, len(a)+len(topic)+6)
	k = append(k, a...)
	k = append(k, 0)
	k = append(k, topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

func splitKey(k []byte) (a, topic string, partition int32, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) < i+6 {
		return "", "", 0, false
	}
	rest := k[i+1:]
	j := len(rest) - 5
	if j < 0 || rest[j] != 0 {
		return "", "", 0, false
	}
	return string(k[:i]), string(rest[:j]), int32(binary.BigEndian.Uint32(rest[j+1:])), true
}
