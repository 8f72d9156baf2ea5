package kafka

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/kafka/group"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's Kafka API table from the version table")

const (
	readmePath      = "../../README.md"
	compatBegin     = "<!-- BEGIN Kafka API table"
	compatEnd       = "<!-- END Kafka API table -->"
	noteClusterWide = "cluster-internal (controller, replication between brokers); a runnel box is its own cluster"
)

// apiNotes says why a key is served only in part or not at all. Keys not
// listed here and not served get "not served".
var apiNotes = map[int16]string{
	0:  "v13+ names topics by ID only",
	1:  "v13+ names topics by ID only",
	8:  "v10 names topics by ID only; KIP-848 members commit with their member epoch",
	9:  "v10 names topics by ID only; KIP-848 members fetch with their member epoch",
	10: "groups and transactional ids: every box coordinates both",
	17: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (users file, `runnel user`)",
	36: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (users file, `runnel user`)",
	21: "records are removed by retention only",
	22: "idempotent and transactional producers (epoch bump fences the previous producer)",
	23: "when the log keeps leader epochs (always for `runnel serve`)",
	24: "v4+ is broker-to-broker verification (KIP-890)",
	25: "transactions",
	26: "v5+ is transactions v2 (KIP-890), not advertised",
	28: "offsets staged until the transaction commits",
	29: "advertised and served when access rules are configured (`access.*`)",
	30: "advertised and served when access rules are configured (`access.*`)",
	31: "advertised and served when access rules are configured (`access.*`)",
	34: "one log directory",
	35: "one log directory",
	38: "no delegation tokens",
	39: "no delegation tokens",
	40: "no delegation tokens",
	41: "no delegation tokens",
	43: "one broker leads every partition",
	45: "one broker holds every partition",
	46: "one broker holds every partition",
	48: "quotas are set in `access.quotas` (config file)",
	49: "quotas are set in `access.quotas` (config file)",
	50: "SCRAM users are managed with `runnel user` (users file)",
	51: "SCRAM users are managed with `runnel user` (users file)",
	61: "kafka-transactions abort/find-hanging need it; not served",
	65: "`kafka-transactions describe`",
	66: "`kafka-transactions list`",
	68: "KIP-848 consumer groups; assignors `uniform` (default) and `range`",
	69: "KIP-848 consumer groups",
	71: "no client telemetry (KIP-714)",
	72: "no client telemetry (KIP-714)",
	74: "no client metrics resources",
	75: "Metadata serves the same",
	76: "no share groups (KIP-932)", 77: "no share groups (KIP-932)", 78: "no share groups (KIP-932)", 79: "no share groups (KIP-932)",
	83: "no share groups (KIP-932)", 84: "no share groups (KIP-932)", 85: "no share groups (KIP-932)", 86: "no share groups (KIP-932)",
	87: "no share groups (KIP-932)", 90: "no share groups (KIP-932)", 91: "no share groups (KIP-932)", 92: "no share groups (KIP-932)",
	88: "no Kafka Streams groups (KIP-1071): Streams uses consumer groups",
	89: "no Kafka Streams groups (KIP-1071): Streams uses consumer groups",
	93: "no Kafka Streams groups (KIP-1071): Streams uses consumer groups",
}

// clusterInternal are the keys only brokers and controllers send each other.
var clusterInternal = map[int16]bool{
	4: true, 5: true, 6: true, 7: true, 27: true, 52: true, 53: true, 54: true, 55: true, 56: true,
	57: true, 58: true, 59: true, 62: true, 63: true, 64: true, 67: true, 70: true, 73: true,
	80: true, 81: true, 82: true, 94: true,
}

// servedTable is the version table of `runnel serve`: a group coordinator
// and a log with leader epochs.
func servedTable(t *testing.T) *versionTable {
	t.Helper()
	return newVersionTable(&groupVersionsOnly{}, true, false)
}

// groupVersionsOnly is a GroupHandler that only reports the coordinator's
// versions (the table needs no more).
type groupVersionsOnly struct{ GroupHandler }

func (groupVersionsOnly) Versions() map[int16][2]int16 { return group.Versions() }

// versionRanges renders versions lo..hi except the served [s0, s1].
func unservedRanges(max int16, served bool, s [2]int16) string {
	var parts []string
	add := func(a, b int16) {
		switch {
		case a > b:
		case a == b:
			parts = append(parts, fmt.Sprint(a))
		default:
			parts = append(parts, fmt.Sprintf("%d–%d", a, b))
		}
	}
	if !served {
		add(0, max)
	} else {
		add(0, s[0]-1)
		add(s[1]+1, max)
	}
	return strings.Join(parts, ", ")
}

// compatTable renders the README's Kafka API table: every API key kmsg
// knows, the versions served and the versions not served.
func compatTable(vt *versionTable) string {
	var b strings.Builder
	b.WriteString("| API (key) | versions served | versions not served | notes |\n|---|---|---|---|\n")
	for k := int16(0); k < maxKey; k++ {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		served := ""
		if vt.served[k] {
			served = fmt.Sprintf("%d–%d", vt.rng[k][0], vt.rng[k][1])
		}
		note, ok := apiNotes[k]
		switch {
		case clusterInternal[k]:
			note = noteClusterWide
		case !ok && !vt.served[k]:
			note = "not served"
		}
		notServed := unservedRanges(req.MaxVersion(), vt.served[k], vt.rng[k])
		if served == "" {
			served = "—"
		}
		if notServed == "" {
			notServed = "—"
		}
		fmt.Fprintf(&b, "| %s (%d) | %s | %s | %s |\n", kmsg.NameForKey(k), k, served, notServed, note)
	}
	return b.String()
}

// TestREADMEKafkaAPITable: the README's Kafka API table is the server's
// version table (what ApiVersions advertises), for every key kmsg knows.
// -update-readme rewrites it.
func TestREADMEKafkaAPITable(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(compatBegin))
	j := bytes.Index(readme, []byte(compatEnd))
	if i < 0 || j < i {
		t.Fatalf("README lacks the %q … %q markers", compatBegin, compatEnd)
	}
	i += bytes.IndexByte(readme[i:], '\n') + 1
	got, want := string(readme[i:j]), compatTable(servedTable(t))
	if *updateREADME {
		out := append(append(append([]byte{}, readme[:i]...), want...), readme[j:]...)
		if err := os.WriteFile(readmePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for n := 0; n < max(len(gl), len(wl)); n++ {
			var g, w string
			if n < len(gl) {
				g = gl[n]
			}
			if n < len(wl) {
				w = wl[n]
			}
			if g != w {
				t.Fatalf("README Kafka API table differs from the version table at line %d:\nREADME: %s\ncode:   %s\n(go test ./ingest/kafka -run TestREADMEKafkaAPITable -update-readme rewrites it)", n+1, g, w)
			}
		}
	}
}

// TestApiVersionsIsTheTable: a server with a group coordinator advertises
// exactly the version table, and every key and version outside it (every
// one kmsg knows) is answered at once, in the key's response format, with
// UNSUPPORTED_VERSION in every error code: no request hangs or gets a
// retriable error.
func TestApiVersionsIsTheTable(t *testing.T) {
	l := openLog(t, "")
	coord, err := group.New(group.Options{Meta: l.Meta(), Log: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coord.Close() })
	ts := startServer(t, l, func(o *Options) { o.Groups = coord })
	vt := servedTable(t)
	r := dialRaw(t, ts.addr)
	av := r.roundTrip(kmsg.NewPtrApiVersionsRequest(), 1).(*kmsg.ApiVersionsResponse)
	advertised := map[int16][2]int16{}
	for _, k := range av.ApiKeys {
		advertised[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	want := wantUnsupportedAnswers()
	corr := int32(2)
	for k := int16(0); k < maxKey; k++ {
		if got, ok := advertised[k]; ok != vt.served[k] || ok && got != vt.rng[k] {
			t.Fatalf("%s (%d): advertised %v (%v), table %v (%v)", kmsg.NameForKey(k), k, got, ok, vt.rng[k], vt.served[k])
		}
		req := kmsg.RequestForKey(k)
		if req == nil || k == keyApiVersions {
			continue // ApiVersions: TestApiVersions
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			if vt.serves(k, v) {
				continue
			}
			req := kmsg.RequestForKey(k)
			req.SetVersion(v)
			r.write(frame(req, corr))
			body, err := r.readFrame()
			if err != nil {
				t.Fatalf("%s v%d: %v", kmsg.NameForKey(k), v, err)
			}
			if got := int32(binary.BigEndian.Uint32(body)); got != corr {
				t.Fatalf("%s v%d: correlation id %d, want %d", kmsg.NameForKey(k), v, got, corr)
			}
			if string(body[4:]) != want[k][v] {
				t.Fatalf("%s v%d: answer % x, want the empty response with UNSUPPORTED_VERSION % x", kmsg.NameForKey(k), v, body[4:], want[k][v])
			}
			corr++
		}
	}
}
