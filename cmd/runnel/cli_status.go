package main

// runnel status: what the server holds (over the Kafka protocol, so it works
// against any Kafka-API server) plus, when runnel's HTTP listener answers,
// its /api/status document (node, uptime, disk, routes).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var statusCmd = command{
	name: "status",
	summary: `Show the brokers, topics and their offsets, and (when the server's HTTP
address answers GET /api/status) the node's own status: node id, uptime,
disk, routes. The HTTP part is optional: other Kafka servers have none.`,
}

// defaultHTTPAddr is where `runnel status` asks for /api/status without
// --http: the first broker's host, port 8080 (runnel's default HTTP port).
func defaultHTTPAddr(cf *clientFlags) string {
	if seeds, err := cf.seeds(); err == nil {
		if host, _, err := net.SplitHostPort(seeds[0]); err == nil {
			return net.JoinHostPort(host, "8080")
		}
	}
	return "127.0.0.1:8080"
}

// runStatus implements `runnel status`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := statusCmd
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	httpAddr := fs.String("http", "", "runnel's HTTP address for /api/status (default: the first broker's host, port 8080; \"\" to skip)")
	internal := fs.Bool("internal", false, "also list internal topics")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return c.fail(stderr, usageErrorf("unexpected argument %q", fs.Arg(0)))
	}
	if !fs.Changed("http") {
		*httpAddr = defaultHTTPAddr(cf)
	}
	// Ask HTTP in parallel with the Kafka side; it is only decoration.
	type httpResult struct {
		doc map[string]any
		err error
	}
	httpc := make(chan httpResult, 1)
	if *httpAddr != "" {
		go func() {
			doc, err := fetchHTTPStatus(ctx, *httpAddr)
			httpc <- httpResult{doc, err}
		}()
	}

	cl, err := cf.newClient()
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	meta, err := req.RequestWith(rctx, cl)
	if err != nil {
		return c.fail(stderr, fmt.Errorf("metadata from %s: %w", cf.brokers, err))
	}
	fmt.Fprintln(stdout, "Brokers:")
	for _, b := range meta.Brokers {
		ctl := ""
		if b.NodeID == meta.ControllerID {
			ctl = " (controller)"
		}
		fmt.Fprintf(stdout, "  %d  %s:%d%s\n", b.NodeID, b.Host, b.Port, ctl)
	}
	if meta.ClusterID != nil {
		fmt.Fprintf(stdout, "Cluster: %s\n", *meta.ClusterID)
	}
	tms, _, err := fetchMetadata(rctx, cl, nil)
	if err != nil {
		return c.fail(stderr, err)
	}
	tms = slices.DeleteFunc(tms, func(t topicMeta) bool { return t.internal && !*internal })
	offs, err := listOffsets(rctx, cl, tms)
	if err != nil {
		return c.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "\nTopics (%d):\n", len(tms))
	printTopicTable(stdout, tms, offs)

	if *httpAddr != "" {
		r := <-httpc
		fmt.Fprintf(stdout, "\nNode (http://%s/api/status):\n", *httpAddr)
		if r.err != nil {
			fmt.Fprintf(stdout, "  unavailable: %v\n", r.err)
		} else {
			site, ok := r.doc["replication"]
			if ok {
				delete(r.doc, "replication")
			}
			printStatusDoc(stdout, r.doc)
			if ok && !printSite(stdout, site, time.Now()) {
				printStatusValue(stdout, "  ", "replication", site, 0)
			}
		}
	}
	return exitOK
}

// fetchHTTPStatus GETs /api/status from addr and decodes the JSON object.
func fetchHTTPStatus(ctx context.Context, addr string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/api/status", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpGet(ctx, req, http.ProxyFromEnvironment, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	return doc, nil
}

// httpGet does for one GET what http.DefaultClient.Do does (a proxy as
// http.Transport.Proxy picks it, http:// proxies only; https targets, with
// tlsConf's roots when not nil; chunked bodies, via http.ReadResponse) on
// a connection of its own, closed with the body. The status command's one
// request does not need http.Transport, and linking it (with its HTTP/2
// client) costs about 400 KB of the binary.
func httpGet(ctx context.Context, req *http.Request, proxyFor func(*http.Request) (*url.URL, error), tlsConf *tls.Config) (*http.Response, error) {
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	target := hostPortDefault(u.Host, u.Scheme)
	var proxy *url.URL
	if proxyFor != nil {
		p, err := proxyFor(req)
		if err != nil {
			return nil, err
		}
		proxy = p
	}
	if proxy != nil && proxy.Scheme != "http" {
		return nil, fmt.Errorf("proxy %s: only http:// proxies are supported", proxy.Redacted())
	}
	addr := target
	if proxy != nil {
		addr = hostPortDefault(proxy.Host, "http")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The context bounds the whole exchange, body included.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	ok := false
	defer func() {
		if !ok {
			stop()
			nc.Close()
		}
	}()
	br := bufio.NewReader(nc)
	conn := nc
	if proxy != nil && u.Scheme == "https" {
		connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
		if err := connect.Write(nc); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, connect)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		// A 200 has no body: the tunnel follows (reading it would wait
		// for the end of the connection).
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("proxy %s: CONNECT %s: %s", proxy.Redacted(), target, resp.Status)
		}
	}
	if u.Scheme == "https" {
		conf := &tls.Config{}
		if tlsConf != nil {
			conf = tlsConf.Clone()
		}
		conf.ServerName = u.Hostname()
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		conn, br = tc, bufio.NewReader(tc)
	}
	req.Close = true // one request per connection
	if proxy != nil && u.Scheme == "http" {
		err = req.WriteProxy(conn)
	} else {
		err = req.Write(conn)
	}
	if err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	resp.Body = &closeBoth{ReadCloser: resp.Body, conn: conn, stop: stop}
	ok = true
	return resp, nil
}

// hostPortDefault adds the scheme's port to a URL host without one.
func hostPortDefault(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// closeBoth closes a response body and its connection.
type closeBoth struct {
	io.ReadCloser
	conn io.Closer
	stop func() bool
}

func (c *closeBoth) Close() error {
	c.stop()
	c.ReadCloser.Close()
	return c.conn.Close()
}

// printStatusDoc prints the status document: well-known keys first, then the
// rest, sorted; nested values indented, two levels deep, then as JSON.
// Null and empty lists or objects read "none".
func printStatusDoc(w io.Writer, doc map[string]any) {
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		for i, p := range []string{"node", "version", "uptime", "started", "disk", "topics", "routes", "peers"} {
			if strings.Contains(strings.ToLower(k), p) {
				return i
			}
		}
		return 100
	}
	// sort.Slice, not slices.SortFunc: a generic sort is compiled again for
	// each element type (about 10 KB of the binary each).
	sort.Slice(keys, func(i, j int) bool {
		if ra, rb := rank(keys[i]), rank(keys[j]); ra != rb {
			return ra < rb
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		printStatusValue(w, "  ", k, doc[k], 0)
	}
}

func printStatusValue(w io.Writer, indent, key string, v any, depth int) {
	switch x := v.(type) {
	case nil:
		fmt.Fprintf(w, "%s%s: none\n", indent, key)
		return
	case map[string]any:
		if len(x) == 0 {
			fmt.Fprintf(w, "%s%s: none\n", indent, key)
			return
		}
		if depth >= 2 {
			break
		}
		fmt.Fprintf(w, "%s%s:\n", indent, key)
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			printStatusValue(w, indent+"  ", k, x[k], depth+1)
		}
		return
	case []any:
		if len(x) == 0 {
			fmt.Fprintf(w, "%s%s: none\n", indent, key)
			return
		}
		if depth >= 2 {
			break
		}
		fmt.Fprintf(w, "%s%s: (%d)\n", indent, key, len(x))
		for i, e := range x {
			printStatusValue(w, indent+"  ", fmt.Sprintf("- [%d]", i), e, depth+1)
		}
		return
	case float64:
		fmt.Fprintf(w, "%s%s: %s\n", indent, key, formatNumber(key, x))
		return
	case string:
		fmt.Fprintf(w, "%s%s: %s%s\n", indent, key, x, sinceNote(key, x, time.Now()))
		return
	}
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s%s: %s\n", indent, key, b)
}

// formatNumber renders JSON numbers; byte and second counts get units.
func formatNumber(key string, v float64) string {
	k := strings.ToLower(key)
	switch {
	case strings.Contains(k, "bytes") || strings.HasSuffix(k, "free") || strings.HasSuffix(k, "total") || strings.HasSuffix(k, "used"):
		return fmt.Sprintf("%.0f (%s)", v, humanBytes(v))
	case strings.Contains(k, "uptime") && (strings.HasSuffix(k, "seconds") || strings.HasSuffix(k, "_s") || k == "uptime"):
		return fmt.Sprintf("%.0f (%s)", v, (time.Duration(v) * time.Second).String())
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	default:
		return fmt.Sprintf("%g", v)
	}
}

// sinceNote is " (2h5m0s ago)" for a time a key ending in "since" holds
// (a route's state_since), "" for anything else.
func sinceNote(key, v string, now time.Time) string {
	if !strings.HasSuffix(strings.ToLower(key), "since") {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.IsZero() {
		return ""
	}
	return " (" + max(now.Sub(t), 0).Round(time.Second).String() + " ago)"
}

func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
