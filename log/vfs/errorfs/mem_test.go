package errorfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fs vfs.FS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fs.Create(name)
	must(t, err)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	must(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	return b
}

// TestConformance runs one script of operations on MemFS and on the OS file
// system and requires the same observable results.
func TestConformance(t *testing.T) {
	type result struct {
		Log []string
	}
	script := func(t *testing.T, fs vfs.FS, root string) []string {
		var log []string
		note := func(what string, err error) {
			s := what + ": ok"
			if err != nil {
				switch {
				case errors.Is(err, os.ErrNotExist):
					s = what + ": not-exist"
				case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
					s = what + ": not-empty"
				case errors.Is(err, syscall.EISDIR):
					s = what + ": is-dir"
				case errors.Is(err, syscall.ENOTDIR):
					s = what + ": not-dir"
				case errors.Is(err, syscall.EBADF):
					s = what + ": bad-fd"
				default:
					s = what + ": " + err.Error()
				}
			}
			log = append(log, s)
		}
		p := func(n string) string { return filepath.Join(root, n) }
		note("mkdir a/b", fs.MkdirAll(p("a/b"), 0o755))
		note("mkdir again", fs.MkdirAll(p("a/b"), 0o755))
		f, err := fs.Create(p("a/b/f"))
		note("create", err)
		_, err = f.Write([]byte("hello world"))
		note("write", err)
		_, err = f.WriteAt([]byte("HELLO"), 0)
		note("writeat", err)
		_, err = f.WriteAt([]byte("!"), 20) // hole
		note("writeat hole", err)
		note("truncate 15", f.Truncate(15))
		_, err = f.WriteAt([]byte("$"), 17) // gap after truncate reads as zeros
		note("writeat gap", err)
		st, err := f.Stat()
		note("fstat", err)
		log = append(log, "size", string(rune('0'+st.Size()/10)), string(rune('0'+st.Size()%10)))
		buf := make([]byte, 4)
		n, err := f.ReadAt(buf, 16)
		log = append(log, "readat", string(buf[:n]))
		note("readat err", err)
		note("sync", f.Sync())
		note("close", f.Close())
		log = append(log, "content", string(readFile(t, fs, p("a/b/f"))))

		g, err := fs.OpenReadWrite(p("a/b/f"))
		note("open-rw", err)
		_, err = g.Write([]byte("J")) // position 0, no truncation
		note("rw write", err)
		note("rw close", g.Close())
		log = append(log, "content", string(readFile(t, fs, p("a/b/f"))))

		r, err := fs.Open(p("a/b/f"))
		note("open ro", err)
		_, err = r.Write([]byte("x"))
		note("ro write", err)
		part := make([]byte, 3)
		n, err = r.Read(part)
		log = append(log, "read", string(part[:n]))
		note("read err", err)
		note("ro close", r.Close())

		_, err = fs.Open(p("nope"))
		note("open missing", err)
		_, err = fs.Stat(p("a/nope"))
		note("stat missing", err)
		_, err = fs.Create(p("a/b"))
		note("create over dir", err)
		_, err = fs.Create(p("a/b/f/x"))
		note("create under file", err)
		note("remove non-empty dir", fs.Remove(p("a")))
		writeFile(t, fs, p("a/b/g"), []byte("gg"), false)
		note("rename", fs.Rename(p("a/b/g"), p("a/h")))
		note("rename over file", fs.Rename(p("a/h"), p("a/b/f")))
		names, err := fs.List(p("a/b"))
		note("list", err)
		log = append(log, names...)
		log = append(log, "content", string(readFile(t, fs, p("a/b/f"))))
		names, err = fs.List(p("a"))
		note("list a", err)
		log = append(log, names...)
		_, err = fs.List(p("a/b/f"))
		note("list file", err)
		d, err := fs.OpenDir(p("a"))
		note("opendir", err)
		note("dir sync", d.Sync())
		note("dir close", d.Close())
		_, err = fs.OpenDir(p("a/b/f"))
		note("opendir file", err)
		note("remove file", fs.Remove(p("a/b/f")))
		note("remove missing", fs.Remove(p("a/b/f")))
		note("removeall", fs.RemoveAll(p("a")))
		note("removeall missing", fs.RemoveAll(p("a")))
		_, err = fs.Stat(p("a"))
		note("stat removed", err)
		return log
	}
	osRoot := t.TempDir()
	want := script(t, vfs.Default, osRoot)
	got := script(t, NewMem(1), "/data")
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			mark := ""
			if g != w {
				mark = "   <<<"
			}
			t.Logf("%-30q %-30q%s", g, w, mark)
		}
		t.Fatal("MemFS differs from the OS (left MemFS, right OS)")
	}
}

func TestMemOpenFileSurvivesRemove(t *testing.T) {
	fs := NewMem(1)
	must(t, fs.MkdirAll("/d", 0o755))
	f, err := fs.Create("/d/x")
	must(t, err)
	must(t, fs.Remove("/d/x"))
	if _, err := f.Write([]byte("still")); err != nil {
		t.Fatalf("write to unlinked file: %v", err)
	}
	b := make([]byte, 5)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "still" {
		t.Fatalf("read unlinked: %q %v", b, err)
	}
	must(t, f.Close())
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestMemWalkAndReadFile(t *testing.T) {
	fs := NewMem(1)
	must(t, fs.MkdirAll("/r/p/q", 0o755))
	writeFile(t, fs, "/r/p/q/b", []byte("bb"), false)
	writeFile(t, fs, "/r/p/a", []byte("a"), false)
	var got []string
	must(t, fs.Walk("/r", func(p string, size int64) { got = append(got, p, string(rune('0'+size))) }))
	want := []string{"/r/p/a", "1", "/r/p/q/b", "2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk %q want %q", got, want)
	}
	b, err := fs.ReadFile("/r/p/q/b")
	if err != nil || string(b) != "bb" {
		t.Fatalf("ReadFile %q %v", b, err)
	}
	if _, err := fs.ReadFile("/r/p"); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("ReadFile dir: %v", err)
	}
	if err := fs.Rename("/r/p", "/r/p/q/z"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("rename into own subtree: %v", err)
	}
	if !bytes.Equal(readFile(t, fs, "/r/p/a"), []byte("a")) {
		t.Fatal("content")
	}
}
