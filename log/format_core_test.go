package log

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

// A data dir of generation 1 carries no marker: Open writes none, so every
// release reads it as before.
func TestDataFormatGeneration1WritesNoMarker(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, formatName)); !os.IsNotExist(err) {
		t.Fatalf("generation %d wrote %s: %v", DataFormat, formatName, err)
	}
}

// A dir a newer generation made unreadable for this one is refused by Open
// and CheckDir, with a message that says what to do, and nothing in it is
// touched; one a newer generation wrote but this one can still read opens.
func TestDataFormatNewerRefused(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendRecording(t, l, new([]string), 3, "r")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A later generation that older code can still read: opens, the
	// marker stays as it is.
	if err := openDataFormat(vfs.Default, dir, DataFormat+1, DataFormatReadableFrom); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, formatName))
	l = testOpen(t, dir, nil)
	if n := len(readAll(t, l, "t", 0)); n != 3 {
		t.Fatalf("read %d records, want 3", n)
	}
	l.Close()
	if after, _ := os.ReadFile(filepath.Join(dir, formatName)); string(after) != string(before) {
		t.Fatal("an older generation rewrote the marker of a newer one")
	}

	// A later generation that this one cannot read.
	if err := openDataFormat(vfs.Default, dir, DataFormat+1, DataFormat+1); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		m := map[string]string{}
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				m[p] = string(b)
			}
			return nil
		})
		return m
	}
	was := snapshot()
	_, err := Open(&Options{Dir: dir, MinFreeBytes: -1})
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "upgrade runnel") {
		t.Fatalf("Open of a newer data dir: %v, want ErrNewerFormat saying to upgrade", err)
	}
	if _, err := CheckDir(dir); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("CheckDir of a newer data dir: %v", err)
	}
	now := snapshot()
	if len(now) != len(was) {
		t.Fatalf("refused open changed the dir: %d files, were %d", len(now), len(was))
	}
	for p, b := range was {
		if now[p] != b {
			t.Fatalf("refused open changed %s", p)
		}
	}

	// A marker of a newer layout, and a damaged one, are refused too.
	h := fileHeader(formatMagic, formatVersion+1, 1<<32|1)
	os.WriteFile(filepath.Join(dir, formatName), h, 0o644)
	if _, err := Open(&Options{Dir: dir, MinFreeBytes: -1}); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("marker version %d: %v", formatVersion+1, err)
	}
	h = fileHeader(formatMagic, formatVersion, 1<<32|1)
	h[13] ^= 1
	os.WriteFile(filepath.Join(dir, formatName), h, 0o644)
	if _, err := Open(&Options{Dir: dir, MinFreeBytes: -1}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), formatName) {
		t.Fatalf("damaged marker: %v", err)
	}
}
