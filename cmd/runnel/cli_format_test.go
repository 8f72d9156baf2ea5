package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func TestFormat(t *testing.T) {
	r := &kgo.Record{
		Topic: "t1", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("hello"),
		Timestamp: time.UnixMilli(1700000000123),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
	}
	cases := []struct{ format, want string }{
		{`%v\n`, "hello\n"},
		{`%k=%v`, "k=hello"},
		{`%t/%p@%o %T`, "t1/3@42 1700000000123"},
		{`[%h] %K %S 100%%\t\\`, "[a=1,b=2] 1 5 100%\t\\"},
		{`plain`, "plain"},
	}
	for _, c := range cases {
		f, err := parseFormat(c.format)
		if err != nil {
			t.Fatalf("parseFormat(%q): %v", c.format, err)
		}
		if got := string(f.append(nil, r)); got != c.want {
			t.Errorf("format %q = %q, want %q", c.format, got, c.want)
		}
	}
	// A null key or value has length -1, an empty one 0 (kcat's %K and %S).
	f, _ := parseFormat(`%K %S`)
	if got := string(f.append(nil, &kgo.Record{Value: []byte{}})); got != "-1 0" {
		t.Errorf("null key, empty value: %q, want \"-1 0\"", got)
	}
	for _, bad := range []string{`%`, `%x`, `\`, `\q`} {
		if _, err := parseFormat(bad); err == nil {
			t.Errorf("parseFormat(%q) accepted", bad)
		}
	}
}

func TestStartOffsetResolve(t *testing.T) {
	cases := []struct {
		in         string
		start, end int64
		want       int64
	}{
		{"earliest", 5, 10, 5},
		{"latest", 5, 10, 10},
		{"", 5, 10, 10},
		{"-3", 5, 10, 7},
		{"-30", 5, 10, 5},
		{"7", 5, 10, 7},
		{"2", 5, 10, 5},
		{"99", 5, 10, 10},
	}
	for _, c := range cases {
		o, err := parseStartOffset(c.in)
		if err != nil {
			t.Fatalf("parseStartOffset(%q): %v", c.in, err)
		}
		if got := o.resolve(c.start, c.end); got != c.want {
			t.Errorf("%q over [%d,%d) = %d, want %d", c.in, c.start, c.end, got, c.want)
		}
	}
}
