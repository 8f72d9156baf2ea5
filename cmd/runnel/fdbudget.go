package main

import (
	"log/slog"
	"net"
	"sync"
	"syscall"
)

// fdBudget splits the process's file descriptors (RLIMIT_NOFILE) so that
// client connections can never take the ones the log needs: the log's
// file cache (log.max-open-files), a reserve for everything else the
// process opens (meta.db, the journal, shared segment files, directories
// being synced, index files, listeners, upstream and peer connections),
// HTTP connections, and what is left for Kafka and MQTT client
// connections, half each. The caps kafka.max-connections and
// mqtt.max-conns default to those halves.
type fdBudget struct {
	NoFile  int // RLIMIT_NOFILE (the Go runtime raises the soft limit to the hard one)
	Log     int // the log's file cache
	Reserve int // everything else the process opens
	HTTP    int // HTTP connections served at once (more wait in the kernel's backlog)
	Kafka   int // Kafka client connections
	MQTT    int // MQTT client connections
}

const (
	fdReserve = 128
	fdHTTP    = 64
	// fdMinConns: with fewer descriptors than the log and the reserve
	// need, each protocol still gets this many (and a warning at start).
	fdMinConns = 16
)

func descriptorBudget(nofile, logFiles int) fdBudget {
	b := fdBudget{NoFile: nofile, Log: logFiles, Reserve: fdReserve, HTTP: fdHTTP}
	conns := nofile - logFiles - fdReserve - fdHTTP
	b.Kafka = max(conns/2, fdMinConns)
	b.MQTT = max(conns-conns/2, fdMinConns)
	return b
}

// short reports a limit too low for the configuration: less than the log,
// the reserve, HTTP and fdMinConns connections per protocol need.
func (b fdBudget) short() bool {
	return b.NoFile < b.Log+b.Reserve+b.HTTP+2*fdMinConns
}

// rlimitNoFile is the soft RLIMIT_NOFILE (0 when unknown: no cap derived).
func rlimitNoFile() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}

// fds is the descriptor budget of this process under the configuration.
func (c *serveConfig) fds() fdBudget { return descriptorBudget(rlimitNoFile(), c.Log.MaxOpenFiles) }

// logFDBudget says at start how descriptors are shared, and warns when
// RLIMIT_NOFILE is too low for log.max-open-files.
func logFDBudget(c *serveConfig, logger *slog.Logger) {
	b := c.fds()
	if b.NoFile == 0 {
		return
	}
	kafka, mqtt := c.kafkaMaxConns(), c.mqttMaxConns()
	logger.Info("file descriptors", "rlimit_nofile", b.NoFile, "log_files", b.Log, "reserve", b.Reserve, "http_conns", b.HTTP,
		"kafka_max_connections", kafka, "mqtt_max_conns", mqtt)
	if b.short() {
		logger.Warn("RLIMIT_NOFILE is low for this configuration: raise it (systemd LimitNOFILE=, ulimit -n) or lower log.max-open-files",
			"rlimit_nofile", b.NoFile, "log_max_open_files", b.Log, "needs_at_least", b.Log+b.Reserve+b.HTTP+2*fdMinConns)
	}
	if total := kafka + mqtt + b.Log + b.Reserve + b.HTTP; kafka < 0 || mqtt < 0 || total > b.NoFile {
		logger.Warn("kafka.max-connections and mqtt.max-conns together exceed what RLIMIT_NOFILE leaves for connections: a connection flood can exhaust descriptors (appends then fail retriably until it ends)",
			"rlimit_nofile", b.NoFile, "kafka_max_connections", kafka, "mqtt_max_conns", mqtt)
	}
}

// kafkaMaxConns is kafka.max-connections, derived from RLIMIT_NOFILE when
// 0 (-1: no cap).
func (c *serveConfig) kafkaMaxConns() int {
	switch {
	case c.Kafka.MaxConns < 0:
		return -1
	case c.Kafka.MaxConns > 0:
		return c.Kafka.MaxConns
	}
	if b := c.fds(); b.NoFile > 0 {
		return b.Kafka
	}
	return 0 // the package default
}

// mqttMaxConns is mqtt.max-conns, derived from RLIMIT_NOFILE when 0 (-1:
// no cap).
func (c *serveConfig) mqttMaxConns() int {
	switch {
	case c.MQTT.MaxConns < 0:
		return -1
	case c.MQTT.MaxConns > 0:
		return c.MQTT.MaxConns
	}
	if b := c.fds(); b.NoFile > 0 {
		return b.MQTT
	}
	return 0
}

// limitListener accepts at most n connections at once: Accept waits while
// n are open (further clients wait in the kernel's backlog, taking no
// descriptor of ours). One address may hold at most a quarter of them
// (at least 1): a connection beyond that is closed at once, so one host
// holding connections open cannot take them all (64 idle keep-alive
// connections stopped /healthz for everyone).
func limitListener(ln net.Listener, n int) net.Listener {
	return &limitedListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}),
		perIP: max(n/4, 1), ips: map[string]int{}}
}

type limitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	perIP int
	mu    sync.Mutex
	ips   map[string]int // guarded by mu: open connections per remote address
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.ips[ip] >= l.perIP {
			l.mu.Unlock()
			c.Close()
			<-l.sem
			continue
		}
		l.ips[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.ips[ip]--; l.ips[ip] == 0 {
				delete(l.ips, ip)
			}
			l.mu.Unlock()
			<-l.sem
		}}, nil
	}
}

// remoteIP is the host part of c's remote address.
func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
