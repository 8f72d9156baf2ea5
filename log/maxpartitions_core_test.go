package log

import (
	"errors"
	"testing"
)

// TestMaxPartitions: a topic is created or grown to at most MaxPartitions
// partitions; one more is ErrInvalidPartitions and creates nothing.
func TestMaxPartitions(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	if err := l.CreateTopic("wide", TopicConfig{Partitions: MaxPartitions + 1}); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("create with %d partitions: %v", MaxPartitions+1, err)
	}
	if _, err := l.Topic("wide"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("the refused topic exists: %v", err)
	}
	if err := l.CreateTopic("grow", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddPartitions("grow", MaxPartitions+1); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("grow to %d partitions: %v", MaxPartitions+1, err)
	}
}
