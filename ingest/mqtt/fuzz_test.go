package mqtt

import (
	"strings"
	"testing"
)

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"a/#=t", "a/+/b=t,key=client", "=x", "a=", "x=y=z", "#=mqtt,key=none", "a/#=t,acks=all,key=client"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute(s)
		if err != nil {
			return
		}
		if r.Validate() != nil || !strings.HasPrefix(s, r.Filter+"=") {
			t.Fatalf("ParseRoute(%q) = %+v: invalid result", s, r)
		}
	})
}

func FuzzTopicMatch(f *testing.F) {
	f.Add("a/+/#", "a/b/c")
	f.Add("#", "$SYS/x")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if !validFilter(filter) || strings.ContainsAny(topic, "+#") {
			return
		}
		m := topicMatch(filter, topic)
		// A plain topic covered by the filter must match it, and the reverse.
		if c := filterCovers(filter, topic); c != m {
			t.Fatalf("filter %q topic %q: match %v covers %v", filter, topic, m, c)
		}
	})
}
