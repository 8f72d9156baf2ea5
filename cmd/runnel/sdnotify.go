package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	rlog "github.com/runnel/runnel/log"
)

// statusInterval is how often the log's health is checked for STATUS=
// when systemd's watchdog is off.
const statusInterval = 10 * time.Second

// sdNotify sends a state string to systemd when started with Type=notify
// ($NOTIFY_SOCKET set); otherwise it does nothing.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	c.Write([]byte(state))
	c.Close()
}

// watchdogInterval is half of $WATCHDOG_USEC (0 when the watchdog is off).
func watchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// servingStatus is the STATUS= line of a healthy, serving node.
func servingStatus(cfg *serveConfig) string {
	var on []string
	for _, l := range []struct{ name, addr string }{
		{"kafka", cfg.Kafka.Addr}, {"mqtt", cfg.MQTT.Addr}, {"http", cfg.HTTP.Addr},
	} {
		if l.addr != "" {
			on = append(on, l.name+" "+l.addr)
		}
	}
	return fmt.Sprintf("serving %s; log %s, fsync %s", strings.Join(on, ", "), absPath(cfg.DataDir), cfg.Log.Fsync)
}

// stuckCommitAfter is how long a commit (its writes and fsyncs) may run
// before the log counts as hung when systemd's watchdog is off; with it on,
// the bound is WATCHDOG_USEC itself (WatchdogSec=30 in the shipped unit).
// A slow SD card's fsync takes seconds at worst; one that has not returned
// after this long holds every acknowledgement behind it.
const stuckCommitAfter = 30 * time.Second

// logTrouble says why the log cannot take writes ("" when it can): the
// partitions an I/O error made read-only, or a commit running for longer
// than stuckAfter (a hung fsync).
func logTrouble(l rlog.Log, stuckAfter time.Duration) string {
	st := l.Stats()
	ro := st.ReadOnly
	if len(ro) == 0 {
		if st.CommitRunning > stuckAfter {
			return fmt.Sprintf("log stuck: a commit has been writing and syncing for %s (an fsync that does not return)", st.CommitRunning.Round(time.Second))
		}
		return ""
	}
	msg := fmt.Sprintf("log read-only: %s/%d: %v", ro[0].Topic, ro[0].Partition, ro[0].Err)
	if len(ro) > 1 {
		msg += fmt.Sprintf(" (and %d more partitions)", len(ro)-1)
	}
	return msg
}
