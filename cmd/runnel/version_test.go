package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	rlog "github.com/runnel/runnel/log"
)

// `runnel version` names the build and every on-disk format with the
// versions it writes and reads.
func TestVersionPrintsFormats(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{"runnel " + version + " (go", "data format 2: opens 1 and 2, refuses newer; a data dir is at 2 once it holds transactions",
		"transactional mark (<partition>/transactional)",
		"recovery checkpoint (recovery-point)", "writes v3, reads v1-v3", "shared segment (~shared/*.slog)", "leader-epoch history"} {
		if !strings.Contains(got, want) {
			t.Errorf("version output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 2+len(rlog.Formats()) {
		t.Errorf("%d lines, want the build, the data format and %d formats:\n%s", n, len(rlog.Formats()), got)
	}
}
