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

// manyTopics is a log that reports MaxAutoCreatedTopics topics.
type manyTopics struct{ Log }

func (m manyTopics) Topics() []TopicInfo { return make([]TopicInfo, MaxAutoCreatedTopics) }

// TestEnsureTopicStopsAtCap: with MaxAutoCreatedTopics topics, a missing
// one is not created (ErrUnknownTopic); an existing one is still found.
func TestEnsureTopicStopsAtCap(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	if err := l.CreateTopic("old", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	full := manyTopics{l}
	if _, created, err := EnsureTopic(full, "made-up"); !errors.Is(err, ErrUnknownTopic) || created {
		t.Fatalf("EnsureTopic past the cap: created %v, %v", created, err)
	}
	if _, err := l.Topic("made-up"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("the topic was created past the cap: %v", err)
	}
	if _, _, err := EnsureTopic(full, "old"); err != nil {
		t.Fatalf("an existing topic past the cap: %v", err)
	}
}
