package forward

import "testing"

// A route's globs never match internal topics; an exact name does (how an
// operator forwards a __runnel_diverged.* topic).
func TestRouteMatchesInternalTopicsByNameOnly(t *testing.T) {
	r := &route{cfg: Route{Topics: []string{"*", "__runnel_diverged.n1.t"}}}
	for topic, want := range map[string]bool{
		"t":                      true,
		"__runnel_diverged.n1.t": true,
		"__runnel_diverged.n1.u": false,
		"__runnel_cursors":       false,
	} {
		if got := r.matches(topic); got != want {
			t.Errorf("matches(%q) = %v, want %v", topic, got, want)
		}
	}
}
