package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/runnel/runnel/log/logtest/reexec"
)

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNodeIDStable(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	id, err := s.NodeID("")
	if err != nil || !strings.HasPrefix(id, "runnel-") || len(id) != len("runnel-")+12 {
		t.Fatalf("generated id %q %v", id, err)
	}
	again, _ := s.NodeID("")
	if again != id {
		t.Fatalf("id changed: %q -> %q", id, again)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openT(t, dir)
	if got, _ := s.NodeID(""); got != id {
		t.Fatalf("id after reopen %q want %q", got, id)
	}
	if got, _ := s.NodeID("edge-7"); got != "edge-7" {
		t.Fatalf("explicit id %q", got)
	}
	if got, _ := s.NodeID(""); got != "edge-7" {
		t.Fatalf("explicit id not kept: %q", got)
	}
	if movedTo, why := s.Damaged(); movedTo != "" || why != nil {
		t.Fatalf("healthy file reported as damaged: %q %v", movedTo, why)
	}
}

func TestTopicsAndDeleteTopicScope(t *testing.T) {
	s := openT(t, t.TempDir())
	for _, name := range []string{"a", "ab", "b"} {
		if err := s.PutTopic(name, []byte(`{"p":`+fmt.Sprint(len(name))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Offsets and cursors on topics whose names prefix each other.
	for _, topic := range []string{"a", "ab"} {
		if err := s.CommitOffsetsBatched("g", map[TopicPartition]GroupOffset{{topic, 0}: {Offset: 5, Metadata: "m"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetCursor("fwd", topic, 1, 9); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	topics, _ := s.Topics()
	if _, ok := topics["a"]; ok || len(topics) != 2 || string(topics["ab"]) != `{"p":2}` {
		t.Fatalf("topics after delete: %q", topics)
	}
	offs, _ := s.GroupOffsets("g")
	if !reflect.DeepEqual(offs, map[TopicPartition]GroupOffset{{"ab", 0}: {5, "m"}}) {
		t.Fatalf("group offsets after deleting topic a: %v", offs)
	}
	curs, _ := s.Cursors("fwd")
	if !reflect.DeepEqual(curs, map[TopicPartition]int64{{"ab", 1}: 9}) {
		t.Fatalf("cursors after deleting topic a: %v", curs)
	}
}

func TestGroupOffsets(t *testing.T) {
	s := openT(t, t.TempDir())
	parts := []int32{0, 1, 255, 256, 65536, math.MaxInt32}
	want := map[TopicPartition]GroupOffset{}
	for i, p := range parts {
		want[TopicPartition{"t", p}] = GroupOffset{Offset: int64(i) * 1e12, Metadata: fmt.Sprint("meta", i)}
	}
	want[TopicPartition{"t.x", 0}] = GroupOffset{Offset: 0}
	if err := s.CommitOffsetsBatched("g", want); err != nil {
		t.Fatal(err)
	}
	// Groups whose names prefix each other stay apart.
	s.CommitOffsetsBatched("g2", map[TopicPartition]GroupOffset{{"t", 0}: {Offset: 1}})
	got, err := s.GroupOffsets("g")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GroupOffsets = %v, %v\nwant %v", got, err, want)
	}
	groups, _ := s.Groups()
	if !reflect.DeepEqual(groups, []string{"g", "g2"}) {
		t.Fatalf("Groups = %q", groups)
	}
	// A later commit overwrites.
	s.CommitOffsetsBatched("g", map[TopicPartition]GroupOffset{{"t", 0}: {Offset: 77}})
	got, _ = s.GroupOffsets("g")
	if got[TopicPartition{"t", 0}].Offset != 77 || len(got) != len(want) {
		t.Fatalf("after overwrite %v", got)
	}
	if err := s.DeleteGroup("g"); err != nil {
		t.Fatal(err)
	}
	groups, _ = s.Groups()
	if !reflect.DeepEqual(groups, []string{"g2"}) {
		t.Fatalf("after DeleteGroup: %q", groups)
	}
	if got, _ := s.GroupOffsets("g2"); got[TopicPartition{"t", 0}].Offset != 1 {
		t.Fatalf("g2 damaged by deleting g: %v", got)
	}
	if got, _ := s.GroupOffsets("nobody"); len(got) != 0 {
		t.Fatalf("unknown group: %v", got)
	}
}

func TestCursors(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if _, ok, err := s.Cursor("fwd", "t", 0); ok || err != nil {
		t.Fatalf("missing cursor: ok=%v err=%v", ok, err)
	}
	s.SetCursors("fwd", map[TopicPartition]int64{{"t", 0}: 10, {"t", 1}: 0, {"u", 3}: math.MaxInt64})
	s.SetCursor("fwd2", "t", 0, 99)
	off, ok, err := s.Cursor("fwd", "t", 0)
	if off != 10 || !ok || err != nil {
		t.Fatalf("Cursor = %d %v %v", off, ok, err)
	}
	s.Close()
	s = openT(t, dir) // durable across reopen
	all, _ := s.Cursors("fwd")
	if !reflect.DeepEqual(all, map[TopicPartition]int64{{"t", 0}: 10, {"t", 1}: 0, {"u", 3}: math.MaxInt64}) {
		t.Fatalf("Cursors = %v", all)
	}
	if err := s.DeleteCursors("fwd"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Cursors("fwd"); len(all) != 0 {
		t.Fatalf("after delete: %v", all)
	}
	if off, ok, _ := s.Cursor("fwd2", "t", 0); !ok || off != 99 {
		t.Fatalf("fwd2 damaged: %d %v", off, ok)
	}
}

func TestKV(t *testing.T) {
	s := openT(t, t.TempDir())
	var seen []string
	if err := s.KVForEach("none", func(k string, v []byte) error { seen = append(seen, k); return nil }); err != nil || seen != nil {
		t.Fatalf("missing bucket: %v %v", seen, err)
	}
	err := s.KVApply("retained", []KVWrite{{"a/b", []byte("1")}, {"a/c", []byte("2")}, {"z", []byte{}}})
	if err != nil {
		t.Fatal(err)
	}
	s.KVApply("retained", []KVWrite{{"a/c", nil}, {"a/b", []byte("3")}})
	s.KVApply("sessions", []KVWrite{{"c1", []byte("s")}})
	got := map[string]string{}
	s.KVForEach("retained", func(k string, v []byte) error { got[k] = string(v); return nil })
	if !reflect.DeepEqual(got, map[string]string{"a/b": "3", "z": ""}) {
		t.Fatalf("retained = %q", got)
	}
	for _, c := range []struct {
		bucket, key string
		want        []byte
	}{{"retained", "a/b", []byte("3")}, {"retained", "z", []byte{}}, {"retained", "a/c", nil}, {"none", "a/b", nil}} {
		v, err := s.KVGet(c.bucket, c.key)
		if err != nil || (v == nil) != (c.want == nil) || string(v) != string(c.want) {
			t.Errorf("KVGet(%s, %s) = %q, %v; want %q", c.bucket, c.key, v, err, c.want)
		}
	}
	stop := fmt.Errorf("stop")
	n := 0
	if err := s.KVForEach("retained", func(string, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("callback error not returned: %v after %d", err, n)
	}
}

func TestDamagedFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	s.PutTopic("t", []byte("{}"))
	s.Close()
	path := filepath.Join(dir, FileName)
	b, _ := os.ReadFile(path)
	for i := range b[:8192] { // both meta pages
		b[i] ^= 0x5a
	}
	os.WriteFile(path, b, 0o600)
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("damaged file not recovered: %v", err)
	}
	defer s2.Close()
	movedTo, why := s2.Damaged()
	if !errors.Is(why, ErrDamaged) {
		t.Fatalf("Damaged() = %q, %v; want ErrDamaged", movedTo, why)
	}
	if topics, _ := s2.Topics(); len(topics) != 0 {
		t.Fatalf("recreated store has topics %v", topics)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 || matches[0] != movedTo {
		t.Fatalf("damaged file not kept aside: %v (Damaged says %q)", matches, movedTo)
	}
	if _, err := s2.NodeID(""); err != nil {
		t.Fatal(err)
	}
}

func TestGarbageFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("not a bolt file at all"), 0o600)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if movedTo, why := s.Damaged(); movedTo == "" || !errors.Is(why, ErrDamaged) {
		t.Fatalf("Damaged() = %q, %v", movedTo, why)
	}
}

// TestTruncatedFileIsMovedAside: a file cut short inside its pages (a
// copy or a restore that stopped early) is damage too.
func TestTruncatedFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	s.PutTopic("t", []byte("{}"))
	s.Close()
	path := filepath.Join(dir, FileName)
	if err := os.Truncate(path, 6000); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("truncated file: %v", err)
	}
	defer s2.Close()
	if movedTo, why := s2.Damaged(); movedTo == "" || !errors.Is(why, ErrDamaged) {
		t.Fatalf("Damaged() = %q, %v", movedTo, why)
	}
}

// TestSystemErrorIsNotDamage: meta.db that the system cannot open as a
// file (here a directory: EISDIR) stops Open with an error naming it, and
// nothing is moved or created.
func TestSystemErrorIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded over a meta.db it cannot open")
	}
	if errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open: %v; want a system error naming %s", err, path)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("meta.db was moved or replaced: %v", err)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("moved aside: %v", m)
	}
}

// TestIsDamage: what bbolt reports about the file's content is damage;
// anything the system reports (an errno, a failed path operation) is not.
func TestIsDamage(t *testing.T) {
	for _, tc := range []struct {
		err    error
		damage bool
	}{
		{berrors.ErrInvalid, true},
		{berrors.ErrChecksum, true},
		{berrors.ErrVersionMismatch, true},
		{fmt.Errorf("file size too small %d", 6000), true},
		{&fs.PathError{Op: "open", Path: "meta.db", Err: syscall.EACCES}, false},
		{&fs.PathError{Op: "read", Path: "meta.db", Err: syscall.EIO}, false},
		{fmt.Errorf("mmap allocate error: %w", syscall.ENOMEM), false},
		{syscall.ENOSPC, false},
		{syscall.EROFS, false},
		{fmt.Errorf("file stat error: %w", &fs.PathError{Op: "stat", Err: syscall.EIO}), false},
	} {
		if got := isDamage(tc.err); got != tc.damage {
			t.Errorf("isDamage(%v) = %v, want %v", tc.err, got, tc.damage)
		}
	}
}

// TestPermissionDeniedStopsOpen: a meta.db the process may not open
// (EACCES) in a directory it may write stops Open with a permission error;
// the file stays where it is with its cursors. Run as an unprivileged user
// (root ignores file permissions): when the test runs as root, the check
// runs in a child process with uid/gid 65534.
func TestPermissionDeniedStopsOpen(t *testing.T) {
	if dir := os.Getenv("RUNNEL_META_EACCES_DIR"); dir != "" {
		s, err := Open(dir) // the child: report and stop
		if err == nil {
			movedTo, _ := s.Damaged()
			s.Close()
			fmt.Printf("opened (moved to %q)\n", movedTo)
			return
		}
		fmt.Printf("error: %v\n", err)
		return
	}
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	os.Mkdir(dir, 0o777)
	s := openT(t, dir)
	if err := s.SetCursor("forward/r", "t", 0, 42); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	if os.Geteuid() == 0 {
		// The child must reach the binary and the data dir, and may
		// write the dir (so moving the file aside would succeed), but
		// not open the file (root's, mode 0600).
		for _, d := range []string{filepath.Dir(base), base} {
			os.Chmod(d, 0o755)
		}
		os.Chmod(dir, 0o777)
		bin := filepath.Join(base, "meta.test")
		self, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, self, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := reexec.CommandOf(bin, "-test.run=^TestPermissionDeniedStopsOpen$")
		cmd.Env = append(os.Environ(), "RUNNEL_META_EACCES_DIR="+dir)
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err = cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
	} else {
		os.Chmod(path, 0)
		defer os.Chmod(path, 0o600)
		if s, err := Open(dir); err != nil {
			out = []byte("error: " + err.Error())
		} else {
			movedTo, _ := s.Damaged()
			s.Close()
			out = []byte(fmt.Sprintf("opened (moved to %q)", movedTo))
		}
		os.Chmod(path, 0o600)
	}
	if !strings.Contains(string(out), "error: meta: open "+path) || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("Open of an unreadable meta.db: %s", out)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("an unreadable file was moved aside: %v", m)
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("meta.db changed or gone: %v", err)
	}
	s = openT(t, dir)
	if off, ok, _ := s.Cursor("forward/r", "t", 0); !ok || off != 42 {
		t.Fatalf("cursor after the refused open: %d %v", off, ok)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openT(t, t.TempDir())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := fmt.Sprint("c", g)
				if err := s.SetCursor(name, "t", int32(i%3), int64(i)); err != nil {
					t.Error(err)
				}
				s.Cursors(name)
				s.CommitOffsetsBatched(name, map[TopicPartition]GroupOffset{{"t", 0}: {Offset: int64(i)}})
				s.Groups()
			}
		}()
	}
	wg.Wait()
	for g := range 4 {
		if off, ok, _ := s.Cursor(fmt.Sprint("c", g), "t", 19%3); !ok || off != 19 {
			t.Fatalf("cursor c%d = %d %v", g, off, ok)
		}
	}
}

// TestGroupsListsEmptyGroupName: CommitOffsetsBatched accepts the group id "" (old
// Kafka clients use it), so Groups must list it.
func TestGroupsListsEmptyGroupName(t *testing.T) {
	s := openT(t, t.TempDir())
	s.CommitOffsetsBatched("", map[TopicPartition]GroupOffset{{"t", 0}: {Offset: 2}})
	s.CommitOffsetsBatched("g", map[TopicPartition]GroupOffset{{"t", 0}: {Offset: 1}})
	if got, _ := s.GroupOffsets(""); got[TopicPartition{"t", 0}].Offset != 2 {
		t.Fatalf("GroupOffsets(\"\") = %v", got)
	}
	if groups, _ := s.Groups(); !reflect.DeepEqual(groups, []string{"", "g"}) {
		t.Fatalf("Groups = %q, want [\"\" \"g\"]", groups)
	}
}
