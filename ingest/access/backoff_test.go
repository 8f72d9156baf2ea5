package access

import (
	"testing"
	"time"
)

func TestBackoffGrowsPerSourceAndResets(t *testing.T) {
	b := &Backoff{Base: 100 * time.Millisecond, Max: time.Second, Forget: time.Minute}
	want := []time.Duration{0, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Failed("10.0.0.1"); got != w*time.Millisecond {
			t.Fatalf("failure %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.Failed("10.0.0.2"); got != 0 {
		t.Fatalf("another source: %v", got)
	}
	b.Succeeded("10.0.0.1")
	if got := b.Failed("10.0.0.1"); got != 0 {
		t.Fatalf("after a success: %v", got)
	}
}
