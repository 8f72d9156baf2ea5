package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/certs"
	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/ingest/users"
	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/web"
)

// runServe wires the appliance: config → log → listeners → components, and
// shuts them down in reverse on SIGTERM/SIGINT.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, fs, err := loadServeConfig(args, os.LookupEnv, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: runnel serve [flags]\n\nEvery flag is also an environment variable RUNNEL_<FLAG> and a key of the --config file\n(flat as the flag, or nested: see the README configuration reference).\n\n%s", fs.FlagUsages())
			return 0
		}
		fmt.Fprintf(stderr, "runnel serve: %v\n", err)
		return 2
	}
	if err := cfg.checkFiles(); err != nil {
		fmt.Fprintf(stderr, "runnel serve: %v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	if err := serve(ctx, cfg, logger); err != nil {
		fmt.Fprintf(stderr, "runnel serve: %v\n", err)
		return 1
	}
	return 0
}

// stopper is one started component. At shutdown every stopper runs at
// once (the components do not depend on each other, only on the log), so
// each has the whole deadline: stop returns by the time ctx ends, whatever
// its peers (upstreams, clients) do. A stopper marked after runs once the
// others returned: the components above use what it serves (replication's
// view of the log).
type stopper struct {
	name  string
	stop  func(ctx context.Context) error
	after bool
}

// logCloseShare is the part of --shutdown-timeout kept for the log's
// final sync and close: the components' stop deadline is the rest.
const logCloseShare = 10 // percent

func serve(ctx context.Context, cfg *serveConfig, logger *slog.Logger) (err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %v", cfg.DataDir, err)
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()

	sdNotify("STATUS=opening the log in " + absPath(cfg.DataDir))
	lo := cfg.logOptions(logger)
	if fs := logFS(); fs != nil {
		lo.FS = fs
	}
	l, err := rlog.Open(lo)
	if err != nil {
		return fmt.Errorf("open log in %s: %v", cfg.DataDir, err)
	}
	nodeID, err := l.Meta().NodeID(cfg.NodeID)
	if err != nil {
		l.Close()
		return fmt.Errorf("node id: %v", err)
	}
	logger = logger.With("node", nodeID)
	logFDBudget(cfg, logger)

	var stops []stopper
	// shutdown stops every component, then syncs and closes the log,
	// within --shutdown-timeout: the components stop together with one
	// deadline (all but logCloseShare of it) and give up what they wait
	// for (in-flight upstream acks, slow clients) when it passes; the log
	// is closed when they returned, or at the timeout if one of them
	// did not. What was acknowledged is durable already. It runs once; its
	// result is the log's close error (a failed final sync must not exit
	// 0).
	var closeErr error
	shutdown := sync.OnceFunc(func() {
		hard, cancelHard := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancelHard()
		sctx, cancel := context.WithTimeout(hard, cfg.ShutdownTimeout*(100-logCloseShare)/100)
		defer cancel()
		stopped := make(chan struct{})
		stopAll := func(after bool) {
			var wg sync.WaitGroup
			for _, s := range stops {
				if s.after != after {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.stop(sctx); err != nil {
						logger.Warn("stop", "component", s.name, "err", err)
					}
				}()
			}
			wg.Wait()
		}
		go func() { stopAll(false); stopAll(true); close(stopped) }()
		select {
		case <-stopped:
		case <-hard.Done():
			logger.Error("stop: a component did not stop within --shutdown-timeout; closing the log anyway", "timeout", cfg.ShutdownTimeout)
		}
		if err := l.Close(); err != nil {
			logger.Error("close log", "err", err)
			closeErr = fmt.Errorf("close log: %v", err)
		}
	})
	defer func() {
		if err != nil {
			shutdown()
		}
	}()

	w := &wiring{cfg: cfg, log: l, logger: logger, nodeID: nodeID, errc: make(chan error, 8)}
	if err := w.start(ctx, &stops); err != nil {
		return err
	}

	logger.Info("runnel started", "data_dir", absPath(cfg.DataDir), "kafka", cfg.Kafka.Addr, "mqtt", cfg.MQTT.Addr, "http", cfg.HTTP.Addr, "fsync", cfg.Log.Fsync, "version", version)
	// Every listener is bound and the log is open: systemd may start what
	// is ordered after runnel.
	serving := servingStatus(cfg)
	sdNotify("READY=1\nSTATUS=" + serving)
	// The watchdog is pinged while the log can take writes: a read-only
	// partition (an fsync or write failed) stops the pings, so systemd
	// restarts runnel, whose open recovers the log; a commit that has run
	// for longer than WATCHDOG_USEC (a hung fsync) and a hung main loop
	// stop them too. Without a watchdog the same check keeps STATUS=
	// current.
	wd := watchdogInterval()
	iv, stuckAfter := wd, 2*wd
	if iv <= 0 {
		iv, stuckAfter = statusInterval, stuckCommitAfter
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	// Without systemd ($NOTIFY_SOCKET unset: no STATUS= to keep, no
	// watchdog) the check only logs trouble, and trouble needs writes: a
	// stuck commit runs for an append, and a partition turns read-only
	// when a write or fsync fails (the log logs that itself). So while the
	// log takes no append and no commit runs, the check sleeps without a
	// timer until the next append: an idle box takes no wakeup for it.
	aw, _ := l.(rlog.AppendWatcher)
	sleepIdle := wd <= 0 && os.Getenv("NOTIFY_SOCKET") == "" && aw != nil
	appendW := rlog.NewWaiter()
	var appended <-chan struct{}
	seen := l.Stats().AppendedBatches
	if sleepIdle && logTrouble(l, stuckAfter) == "" {
		t.Stop()
		aw.WatchAppends(appendW, seen)
		appended = appendW.C()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	lastTrouble := ""
	for {
		select {
		case <-appended:
			appended = nil
			seen = l.Stats().AppendedBatches
			t.Reset(iv)
		case <-hup:
			w.reloadTLS()
			w.reloadUsers()
		case <-ctx.Done():
			logger.Info("stopping", "reason", "signal")
			sdNotify("STOPPING=1\nSTATUS=stopping: syncing and closing the log")
			shutdown()
			if closeErr != nil {
				return closeErr
			}
			logger.Info("stopped cleanly")
			return nil
		case e := <-w.errc:
			logger.Error("component failed", "err", e)
			sdNotify("STOPPING=1\nSTATUS=stopping: " + e.Error())
			shutdown()
			return e
		case <-t.C:
			trouble := logTrouble(l, stuckAfter)
			switch {
			case trouble != "" && trouble != lastTrouble:
				msg := trouble
				if wd > 0 {
					msg += "; watchdog pings stopped"
				}
				logger.Error("log unhealthy", "why", msg)
				sdNotify("STATUS=" + msg)
			case trouble == "" && lastTrouble != "":
				sdNotify("STATUS=" + serving)
			}
			lastTrouble = trouble
			if trouble == "" && wd > 0 {
				sdNotify("WATCHDOG=1")
			}
			if sleepIdle && trouble == "" {
				st := l.Stats()
				if st.AppendedBatches == seen && st.CommitRunning == 0 {
					t.Stop()
					appendW.Reset()
					aw.WatchAppends(appendW, seen)
					appended = appendW.C()
				}
				seen = st.AppendedBatches
			}
		}
	}
}

// wiring holds what the components share while they start.
type wiring struct {
	cfg    *serveConfig
	log    rlog.Log
	logger *slog.Logger
	nodeID string
	errc   chan error

	collectors []func(*web.Metrics)
	status     map[string]func() any
	routes     func() any
	peers      func() any
	repl       *replicate.Replicator
	// failoverStatus is forwarding failover's, for /api/peers (nil when
	// off).
	failoverStatus func() replicate.FailoverStatus
	// What the components expose to the HTTP surface (nil when off).
	mqttPublish func(ctx context.Context, m web.MQTTMessage) error
	mqttStatus  func() any
	tlsPairs    []*certs.Pair // reloaded on SIGHUP
	// The accounts, read again from users-file on SIGHUP (reloadUsers).
	kafkaUsers *users.Store
	webUsers   *users.Store
	mqttUsers  func([]mqtt.User)
	quotas     *access.Quotas // access.quotas, one budget per user for Kafka and MQTT
	ingest     map[string]func() web.IngestCount
	consumers  func() ([]web.ConsumerGroup, error)
	pauseRoute func(name string, paused bool) error
}

// listen binds addr or returns an error naming the flag.
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %v", flag, addr, err)
	}
	return ln, nil
}

// start starts every component in dependency order, appending its stopper.
func (w *wiring) start(ctx context.Context, stops *[]stopper) error {
	w.status = map[string]func() any{}
	w.ingest = map[string]func() web.IngestCount{}
	if err := w.cfg.usersFileExists(); err != nil {
		return err
	}
	w.startSecurity()
	if err := w.startComponents(ctx, stops); err != nil {
		return err
	}
	if w.cfg.HTTP.Addr == "" {
		return nil
	}
	ln, err := listen("http-addr", w.cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	// Connections beyond the HTTP share of descriptors wait in the
	// kernel's backlog instead of taking the log's.
	ln = limitListener(ln, w.cfg.fds().HTTP)
	if w.cfg.HTTP.TLS.CertFile != "" {
		p, err := w.tlsPair("http.tls", w.cfg.HTTP.TLS.CertFile, w.cfg.HTTP.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, p.ServerConfig())
	}
	auth, err := w.cfg.webAuth()
	if err != nil {
		ln.Close()
		return err
	}
	w.webUsers, _ = auth.Passwords.(*users.Store)
	var brokerID int32
	if w.repl != nil {
		brokerID = w.repl.BrokerID()
	}
	hs, err := web.New(web.Options{
		Log: w.log, Logger: w.logger.With("component", "http"), NodeID: w.nodeID, Version: version,
		Collectors: w.collectors, Status: w.status, Routes: w.routes, Peers: w.peers,
		BrokerID: brokerID, AutoCreateTopics: w.cfg.Kafka.AutoCreateTopics, MaxBodyBytes: w.cfg.HTTP.MaxBodyBytes,
		MQTTPublish: w.mqttPublish, Auth: auth,
		Site: w.cfg.Site, Ingest: w.ingest, DataDir: w.cfg.DataDir, MinFreeBytes: w.cfg.Log.MinFreeBytes, OnFull: w.cfg.Log.OnFull,
		Consumers: w.consumers, MQTT: w.mqttStatus, PauseRoute: w.pauseRoute, LinkBudget: w.cfg.HTTP.LinkBudget,
	})
	if err != nil {
		ln.Close()
		return err
	}
	go func() {
		if err := hs.Serve(ln); err != nil {
			w.errc <- fmt.Errorf("http: %v", err)
		}
	}()
	*stops = append(*stops, stopper{name: "http", stop: hs.Shutdown})
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
