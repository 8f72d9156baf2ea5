package forward

import (
	"fmt"
	"strings"
)

var placeholders = []string{"{topic}", "{node}", "{site}", "{key}"}

// checkTemplate accepts templates whose {...} are known placeholders;
// {key} only where allowed (MQTT targets).
func checkTemplate(t string, allowKey bool) error {
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("target %q: unclosed {", t)
		}
		ph := rest[i : i+j+1]
		known := false
		for _, p := range placeholders {
			if ph == p {
				known = true
			}
		}
		if !known {
			return fmt.Errorf("target %q: unknown placeholder %s (want {topic}, {node}, {site} or, for an MQTT upstream, {key})", t, ph)
		}
		if ph == "{key}" && !allowKey {
			return fmt.Errorf("target %q: {key} is for MQTT upstreams only (a Kafka upstream keeps the record's key)", t)
		}
		rest = rest[i+j+1:]
	}
	if strings.ReplaceAll(t, "{key}", "") == "" && !strings.Contains(t, "{key}") {
		return fmt.Errorf("target is empty")
	}
	return nil
}

// render fills {topic}, {node} and {site}; {key} is left for perKey.
func render(t, topic, node, site string) string {
	r := strings.NewReplacer("{topic}", topic, "{node}", node, "{site}", site)
	return r.Replace(t)
}

// hasKey reports whether a rendered target still needs the record key.
func hasKey(t string) bool { return strings.Contains(t, "{key}") }

// withKey fills {key}.
func withKey(t string, key []byte) string { return strings.ReplaceAll(t, "{key}", string(key)) }
