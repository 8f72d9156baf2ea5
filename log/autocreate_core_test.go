package log

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestEnsureTopic: created once with the log's defaults, then found; many
// callers at once agree on one creation; invalid names are refused.
func TestEnsureTopic(t *testing.T) {
	l := testOpen(t, t.TempDir(), func(o *Options) { o.Defaults.Partitions = 3 })
	defer l.Close()
	info, created, err := EnsureTopic(l, "sensors")
	if err != nil || !created || len(info.Partitions) != 3 {
		t.Fatalf("first EnsureTopic: %+v created=%v %v", info, created, err)
	}
	if info, created, err := EnsureTopic(l, "sensors"); err != nil || created || info.Name != "sensors" {
		t.Fatalf("second EnsureTopic: %+v created=%v %v", info, created, err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, created, err := EnsureTopic(l, "racy")
			if err != nil || len(info.Partitions) != 3 {
				t.Errorf("EnsureTopic racy: %+v %v", info, err)
			}
			if created {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Errorf("%d callers created the topic, want 1", n.Load())
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", strings.Repeat("x", 250)} {
		if _, _, err := EnsureTopic(l, bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("EnsureTopic(%q) = %v, want ErrInvalidTopic", bad, err)
		}
		if ValidTopicName(bad) {
			t.Errorf("ValidTopicName(%q) = true", bad)
		}
	}
	for _, good := range []string{"a", "A-b_c.9", strings.Repeat("x", 249)} {
		if !ValidTopicName(good) {
			t.Errorf("ValidTopicName(%q) = false", good)
		}
	}
}
