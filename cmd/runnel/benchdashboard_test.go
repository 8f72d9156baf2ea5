package main

// make bench-dashboard: what one open dashboard tab costs an idle box.
// One `runnel serve` with its defaults (one topic, "events", holding one
// record) is sampled over the same window (60 s by default,
// RUNNEL_BENCH_DASHBOARD_SECONDS) three ways in one run: with no browser,
// with one headless Chromium tab open on a dashboard page (the overview by
// default; RUNNEL_BENCH_DASHBOARD_PAGES=all measures each page, the topic
// page with its live tail open, or names pages, e.g. "overview,uplink"),
// and after the browser is closed. Each window starts after a settling time
// (RUNNEL_BENCH_DASHBOARD_SETTLE_SECONDS, 10 s), so the page's first load is
// not in it: the figure is what the tab costs while it stays open.
//
// runnel's CPU is its utime + stime (/proc/PID/stat, 10 ms ticks) and its
// threads' run time (/proc/PID/task/*/schedstat, nanoseconds: an idle
// box's window may hold no whole tick); its wakeups are voluntary context
// switches over every thread, as in TestBenchIdle. The tab's requests and
// the bytes it received in the window show that it polled (a tab the
// browser considered hidden would not, and would cost nothing). Chromium's
// own CPU (every process under the browser's, utime + stime) is printed for
// information. Chromium resolves no name but 127.0.0.1 (newBrowser's
// --host-resolver-rules), and the run fails if a page requested anything
// but the box or logged a console error. The page weight of the first load
// (the /ui/ files as transferred) is printed too.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// dashboardBenchPages are the pages RUNNEL_BENCH_DASHBOARD_PAGES=all
// measures: the hash route and an element that is there once it rendered.
var dashboardBenchPages = []struct{ hash, ready string }{
	{"overview", "#ingest"},
	{"uplink", "#main .card"},
	{"topics", "#topics"},
	{"topics/events", "#parts"}, // with its live tail open
	{"consumers", "#main .card"},
	{"mqtt", "#mqtt-clients"},
	{"peers", "#peers-off"},
}

func TestBenchDashboard(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_DASHBOARD") != "1" {
		t.Skip("benchmark: run with RUNNEL_BENCH_DASHBOARD=1 (make bench-dashboard)")
	}
	window := time.Duration(envInt("RUNNEL_BENCH_DASHBOARD_SECONDS", 60)) * time.Second
	settle := time.Duration(envInt("RUNNEL_BENCH_DASHBOARD_SETTLE_SECONDS", 10)) * time.Second
	type page struct{ hash, ready string }
	var pages []page
	switch want := os.Getenv("RUNNEL_BENCH_DASHBOARD_PAGES"); want {
	case "", "overview":
		pages = []page{page(dashboardBenchPages[0])}
	case "all":
		for _, p := range dashboardBenchPages {
			pages = append(pages, page(p))
		}
	default:
	names:
		for _, n := range strings.Split(want, ",") {
			for _, p := range dashboardBenchPages {
				if p.hash == strings.TrimSpace(n) {
					pages = append(pages, page(p))
					continue names
				}
			}
			t.Fatalf("RUNNEL_BENCH_DASHBOARD_PAGES: no page %q (pages: overview, uplink, topics, topics/events, consumers, mqtt, peers, or all)", n)
		}
	}
	if !haveChromium() {
		t.Fatal("chromium not installed: apt-get install chromium (make test-deps installs it)")
	}
	loadStart := loadAvg()

	s := startRunnel(t, 0)
	base := "http://" + s.HTTPAddr()
	runTool(t, 20*time.Second, "", needTool(t, "curl"), "-sf", "-H", "Content-Type: application/json",
		"-d", `{"records":[{"key":"k","value":"one record"}]}`, base+"/topics/events")

	type row struct {
		name            string
		secs            float64
		ticks, ns, sw   int64
		reqs, recvBytes int64
		chromeTicks     int64
		chromeProcs     int
		tab             bool
	}
	var rows []row
	// measure samples runnel (and Chromium's processes under root, if
	// any) over the window, after settling.
	var tab tabCounter
	measure := func(name string, root int) {
		t.Logf("%s: settling %v, then sampling %v", name, settle, window)
		time.Sleep(settle)
		pid := s.PID()
		r0, c0 := runnelCPU(t, pid), treeTicks(root)
		q0, b0 := tab.counts()
		start := time.Now()
		time.Sleep(window)
		r1, c1 := runnelCPU(t, pid), treeTicks(root)
		q1, b1 := tab.counts()
		r := row{name: name, secs: time.Since(start).Seconds(),
			ticks: r1.ticks - r0.ticks, ns: r1.ns - r0.ns, sw: r1.switches - r0.switches,
			reqs: q1 - q0, recvBytes: b1 - b0, tab: root != 0}
		for p, tk := range c1 {
			r.chromeTicks += tk - c0[p] // a process started in the window counts from 0
		}
		r.chromeProcs = len(c1)
		rows = append(rows, r)
	}

	measure("no browser", 0)

	b := newBrowser(t)
	if err := chromedp.Listen(b.ctx, tab.event); err != nil {
		t.Fatal(err)
	}
	proc := chromedp.FromContext(b.ctx).Browser.Process()
	if proc == nil {
		t.Fatal("chromium: no browser process")
	}
	for i, p := range pages {
		b.run(p.hash, chromedp.Navigate(base+"/ui/#/"+p.hash), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		if i == 0 {
			time.Sleep(time.Second) // the first polls' answers
			t.Log(tab.pageWeight())
		}
		name := "one tab open: " + p.hash
		if p.hash == "topics/events" {
			b.run("live tail", chromedp.Click(chromedp.CSS("#tgo")))
			b.waitText("tail live", "#tstate", func(s string) bool { return strings.HasPrefix(s, "live") })
			name += ", live tail open"
		}
		measure(name, proc.Pid)
		r := rows[len(rows)-1]
		// overview and uplink poll every 2 s, the others every 3 s.
		if least := int64(r.secs / 6); r.reqs < least {
			t.Fatalf("%s: the tab made %d requests in %.0f s (at least %d expected): it did not poll", name, r.reqs, r.secs, least)
		}
	}
	b.check(base)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing chromium: %v", err)
	}
	cancel()
	measure("browser closed", 0)

	var out strings.Builder
	fmt.Fprintf(&out, "\nrunnel serve (defaults, idle: no client but the tab), %v per row; 1-minute load average %s at the start, %s at the end\n\n", window, loadStart, loadAvg())
	fmt.Fprintf(&out, "| %v each | runnel CPU, %% of one core (utime+stime, %d Hz) | runnel CPU, %% of one core (schedstat run time) | vs no browser | runnel wakeups/s | vs no browser | tab requests/s | bytes/s to the tab | Chromium CPU, %% of one core (all %s) |\n", window, int(clockTicks), "its processes")
	fmt.Fprintf(&out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	base0 := rows[0]
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fx", a/b)
	}
	for _, r := range rows {
		cpuT := float64(r.ticks) / clockTicks / r.secs * 100
		cpuN := float64(r.ns) / 1e9 / r.secs * 100
		wk := float64(r.sw) / r.secs
		b0N := float64(base0.ns) / 1e9 / base0.secs * 100
		b0W := float64(base0.sw) / base0.secs
		tabCols := "| | | |"
		if r.tab {
			tabCols = fmt.Sprintf("| %.2f | %.0f | %.2f (%d processes) |", float64(r.reqs)/r.secs, float64(r.recvBytes)/r.secs,
				float64(r.chromeTicks)/clockTicks/r.secs*100, r.chromeProcs)
		}
		fmt.Fprintf(&out, "| %s | %.3f (%d ticks) | %.4f | %s | %.2f | %s %s\n", r.name, cpuT, r.ticks, cpuN, ratio(cpuN, b0N), wk, ratio(wk, b0W), tabCols)
	}
	t.Log(out.String())
}

// haveChromium: a Chromium newBrowser can start (it looks for the same
// names; a benchmark asked for fails instead of skipping).
func haveChromium() bool {
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if _, err := exec.LookPath(n); err == nil {
			return true
		}
	}
	return false
}

// cpuSample is one process's CPU and wakeups so far.
type cpuSample struct{ ticks, ns, switches int64 }

func runnelCPU(t *testing.T, pid int) cpuSample {
	t.Helper()
	tk, err := procCPUTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := procRunNanos(pid)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := procSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cpuSample{tk, ns, sw}
}

// procRunNanos sums the time on a CPU of every thread of pid (the first
// field of /proc/PID/task/TID/schedstat, nanoseconds).
func procRunNanos(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %q", pid, task.Name(), b)
		}
		sum += n
	}
	return sum, nil
}

// treeTicks returns utime + stime of root and every process under it,
// by pid (nil for root 0).
func treeTicks(root int) map[int]int64 {
	if root == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fs[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := map[int]int64{}
	for todo := []int{root}; len(todo) > 0; {
		p := todo[0]
		todo = todo[1:]
		if tk, err := procCPUTicks(p); err == nil {
			out[p] = tk
		}
		todo = append(todo, children[p]...)
	}
	return out
}

// tabCounter counts the tab's finished requests and the bytes it received
// (as transferred: headers and bodies), and remembers each URL's size for
// the page weight.
type tabCounter struct {
	mu    sync.Mutex
	urls  map[network.RequestID]string
	sizes map[string]float64 // URL -> bytes transferred, first load
	reqs  int64
	bytes float64
}

func (c *tabCounter) event(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if c.urls == nil {
			c.urls, c.sizes = map[network.RequestID]string{}, map[string]float64{}
		}
		c.urls[e.RequestID] = e.Request.URL
	case *network.EventLoadingFinished:
		c.reqs++
		c.bytes += e.EncodedDataLength
		if u, ok := c.urls[e.RequestID]; ok {
			if _, seen := c.sizes[u]; !seen {
				c.sizes[u] = e.EncodedDataLength
			}
			delete(c.urls, e.RequestID)
		}
	}
}

func (c *tabCounter) counts() (int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reqs, int64(c.bytes)
}

// pageWeight describes the first load: each /ui/ file and API answer as
// transferred (headers included), and the /ui/ files' total.
func (c *tabCounter) pageWeight() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ui float64
	var lines []string
	for u, n := range c.sizes {
		pu, err := url.Parse(u)
		if err != nil {
			continue
		}
		if strings.HasPrefix(pu.Path, "/ui/") {
			ui += n
		}
		lines = append(lines, fmt.Sprintf("  %s %.0f bytes", pu.RequestURI(), n))
	}
	sort.Strings(lines)
	return fmt.Sprintf("page weight, first load of the overview (as transferred, headers included): /ui/ files %.0f bytes\n%s", ui, strings.Join(lines, "\n"))
}
