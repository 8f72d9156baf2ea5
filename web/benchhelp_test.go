package web

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newBenchServer(b *testing.B, s *Server) string {
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	return ts.URL
}

// openTailB returns the data lines of a tail's record events.
func openTailB(b *testing.B, url string) <-chan string {
	resp, err := http.Get(url)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("tail: %v", err)
	}
	b.Cleanup(func() { resp.Body.Close() })
	ch := make(chan string, 1<<16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				ch <- d
			}
		}
	}()
	return ch
}
