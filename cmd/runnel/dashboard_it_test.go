package main

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium returns the path of a headless-capable Chromium, or skips (fails
// with CI=true: make test installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed (make test-deps installs it)")
	}
	t.Skip("chromium not installed")
	return ""
}

// screenshotDir is where the dashboard screenshots go: $RUNNEL_SCREENSHOTS
// (make test names it) or a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("RUNNEL_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is a headless Chromium that may reach only 127.0.0.1 and records
// every request it makes and every console error or exception.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	errors   []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, e.Request.URL)
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console "+string(e.Type)+": "+strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Level == cdplog.EntryLevelWarning {
				b.errors = append(b.errors, "log "+string(e.Entry.Level)+": "+e.Entry.Text+" "+e.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	for _, enable := range []func() error{
		func() error { _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); return err },
		func() error { _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); return err },
		func() error { _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); return err },
	} {
		if err := enable(); err != nil {
			t.Fatalf("chromium: %v", err)
		}
	}
	return b
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitText waits until the text of sel satisfies ok.
func (b *browser) waitText(what, sel string, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var txt string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		var err error
		txt, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil && ok(txt) {
			return txt
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.t.Fatalf("%s: %s is %q", what, sel, txt)
	return ""
}

// check fails on any request to another host and any console error.
func (b *browser) check(base string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	host := strings.TrimPrefix(base, "http://")
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != host) {
			b.t.Errorf("the dashboard requested %s", r)
		}
	}
	for _, e := range b.errors {
		b.t.Errorf("browser: %s", e)
	}
}

// TestDashboardBrowser loads every page of the dashboard in headless
// Chromium against a real runnel serve, light and dark, produces over
// Kafka (kcat) and MQTT (mosquitto_pub) and sees the ingest figures and the
// live tail (EventSource) change; no page requests anything but the box,
// no console error; the Uplink page shows a route's state and since when.
// Screenshots of each page go to $RUNNEL_SCREENSHOTS.
func TestDashboardBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	kcat, pub := needTool(t, "kcat"), needTool(t, "mosquitto_pub")
	b := newBrowser(t)
	// A route to an upstream that refuses connections: the Uplink page
	// shows it backing-off, and since when.
	s := startRunnel(t, 2, "--upstream-kafka", freeAddr(t), "--forward", "uplink-*")
	base := "http://" + s.HTTPAddr()
	mhost, mport, _ := strings.Cut(s.mqtt, ":")
	runTool(t, 20*time.Second, "k1:hello\nk2:world\n", kcat, "-P", "-b", s.Addr(), "-t", "events", "-K", ":")
	runTool(t, 20*time.Second, "", pub, "-h", mhost, "-p", mport, "-t", "plant/hall3/temp", "-m", "21.5", "-q", "1", "-r")
	runTool(t, 60*time.Second, "", runnelBinary(t), "consume", "events", "--brokers", s.Addr(), "--group", "dash-group", "--from-beginning", "-n", "2")
	dir := screenshotDir(t)

	pages := []struct{ hash, ready string }{
		{"overview", "#ingest"},
		{"uplink", "#main .card"},
		{"topics", "#topics"},
		{"topics/events", "#parts"},
		{"consumers", "#main .card"},
		{"mqtt", "#mqtt-clients"},
		{"peers", "#peers-off"},
	}
	for _, theme := range []string{"light", "dark"} {
		for _, p := range pages {
			b.run(p.hash+" ("+theme+")",
				chromedp.Navigate(base+"/ui/?theme="+theme+"#/"+p.hash),
				chromedp.WaitVisible(chromedp.CSS(p.ready)),
				chromedp.Sleep(300*time.Millisecond))
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			cancel()
			if err != nil {
				t.Fatalf("screenshot %s: %v", p.hash, err)
			}
			name := strings.ReplaceAll(p.hash, "/", "-") + "-" + theme + ".png"
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("screenshots in %s", dir)
	b.run("mqtt page", chromedp.Navigate(base+"/ui/#/mqtt"), chromedp.WaitVisible(chromedp.CSS("#mqtt-retained")))
	b.waitText("retained message", "#mqtt-retained", func(s string) bool { return strings.Contains(s, "plant/hall3/temp") })

	b.run("uplink page", chromedp.Navigate(base+"/ui/#/uplink"), chromedp.WaitVisible(chromedp.CSS("#routes")))
	b.waitText("route state", "#routes", func(s string) bool { return strings.Contains(s, "backing-off") })
	b.waitText("route state since", `#routes [data-field="since"]`, func(s string) bool {
		return regexpMatch(`^since \d{1,2}:\d\d(\s?[AP]M)? · \d+ (s|min \d+ s)$`, s)
	})

	// Overview: totals move when Kafka and MQTT produce.
	b.run("overview", chromedp.Navigate(base+"/ui/#/overview"), chromedp.WaitVisible(chromedp.CSS("#ingest")))
	kSel, mSel := `#ingest tr[data-protocol="kafka"] [data-field="total"]`, `#ingest tr[data-protocol="mqtt"] [data-field="total"]`
	b.waitText("kafka total before", kSel, func(s string) bool { return s == "2" })
	b.waitText("mqtt total before", mSel, func(s string) bool { return s == "1" })
	runTool(t, 20*time.Second, "a\nb\nc\n", kcat, "-P", "-b", s.Addr(), "-t", "events")
	runTool(t, 20*time.Second, "", pub, "-h", mhost, "-p", mport, "-t", "plant/hall3/temp", "-m", "22.0", "-q", "1")
	b.waitText("kafka total after", kSel, func(s string) bool { return s == "5" })
	b.waitText("mqtt total after", mSel, func(s string) bool { return s == "2" })
	b.run("consumers", chromedp.Navigate(base+"/ui/#/consumers"), chromedp.WaitVisible(chromedp.CSS("#main .card")))
	b.waitText("group lag", "#main", func(s string) bool {
		return strings.Contains(strings.ToLower(s), "dash-group") && strings.Contains(s, "lag 3 records")
	})

	// Topic page: the live tail shows a record produced over Kafka.
	b.run("topic page", chromedp.Navigate(base+"/ui/#/topics/events"), chromedp.WaitVisible(chromedp.CSS("#tgo")), chromedp.Click(chromedp.CSS("#tgo")))
	b.waitText("tail live", "#tstate", func(s string) bool { return strings.HasPrefix(s, "live") })
	runTool(t, 20*time.Second, "tail-me\n", kcat, "-P", "-b", s.Addr(), "-t", "events")
	b.waitText("tail row", "#tail-table", func(s string) bool { return strings.Contains(s, "tail-me") })
	// Produce form and message browser.
	b.run("produce form", chromedp.SetValue(chromedp.CSS("#pval"), `from the form`), chromedp.Click(chromedp.CSS("#psend")))
	b.waitText("produce answer", "#pres", func(s string) bool { return strings.HasPrefix(s, "stored at partition") })
	b.waitText("tail row from the form", "#tail-table", func(s string) bool { return strings.Contains(s, "from the form") })
	b.run("browse", chromedp.SetValue(chromedp.CSS("#bfrom"), "oldest"), chromedp.Click(chromedp.CSS("#bgo")))
	b.waitText("browser rows", "#browse", func(s string) bool { return strings.Contains(s, "/0") })
	b.check(base)
}
