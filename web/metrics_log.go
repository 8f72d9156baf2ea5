package web

import (
	"math"
	"net/http"
	"strconv"
)

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := NewMetrics(w)
	m.Gauge("runnel_info", "Build and node information.", 1, Labels{"node": s.opts.NodeID, "version": s.opts.Version})
	s.logMetrics(m)
	s.httpMetrics(m)
	for _, c := range s.opts.Collectors {
		c(m)
	}
}

func (s *Server) logMetrics(m *Metrics) {
	st := s.opts.Log.Stats()
	m.Counter("runnel_log_appended_records_total", "Records appended to the log.", float64(st.AppendedRecords), nil)
	m.Counter("runnel_log_appended_bytes_total", "Bytes appended to the log.", float64(st.AppendedBytes), nil)
	m.Counter("runnel_log_appended_batches_total", "Record batches appended to the log.", float64(st.AppendedBatches), nil)
	m.Counter("runnel_log_fsyncs_total", "fsync calls made by the log.", float64(st.Fsyncs), nil)
	m.Counter("runnel_log_fsync_seconds_total", "Time spent in fsync.", float64(st.FsyncNanos)/1e9, nil)
	m.Counter("runnel_log_commits_delayed_total", "Commits held back by the commit delay to gather trickling appends (never for a writer that waits alone).", float64(st.CommitsDelayed), nil)
	m.Counter("runnel_log_commit_delay_seconds_total", "Time commits were held back by the commit delay.", float64(st.CommitDelayNanos)/1e9, nil)
	m.Gauge("runnel_log_commit_running_seconds", "How long the commit now writing and syncing has run (0 between commits); one that keeps growing is an fsync that does not return, which stops the systemd watchdog pings after WATCHDOG_USEC.", st.CommitRunning.Seconds(), nil)
	m.Counter("runnel_log_fsync_errors_total", "Failed fsync calls (each makes a partition read-only).", float64(st.FsyncErrors), nil)
	m.Counter("runnel_log_rejected_appends_total", "Appends refused because the disk was short.", float64(st.Rejected), nil)
	m.Counter("runnel_log_out_of_files_total", "File opens that failed for want of a descriptor (EMFILE/ENFILE); the operation failed retriably, no partition went read-only.", float64(st.OutOfFiles), nil)
	m.Counter("runnel_log_dropped_segments_total", "Segments deleted by drop-oldest under disk pressure.", float64(st.DroppedSegments), nil)
	m.Counter("runnel_log_dropped_records_total", "Records in the segments drop-oldest deleted.", float64(st.DroppedRecords), nil)
	m.Counter("runnel_log_dropped_bytes_total", "Bytes of the segments drop-oldest deleted.", float64(st.DroppedBytes), nil)
	m.Counter("runnel_log_retention_deleted_segments_total", "Segments deleted by age/size retention.", float64(st.RetentionDeletes), nil)
	m.Counter("runnel_log_journal_commits_total", "Group commits made durable through the node-wide journal.", float64(st.JournalCommits), nil)
	m.Counter("runnel_log_journal_bytes_total", "Bytes written to the node-wide journal.", float64(st.JournalBytes), nil)
	cl := st.Cleaner
	m.Counter("runnel_log_cleaner_passes_total", "Cleaning passes over partitions of compacted topics.", float64(cl.Passes), nil)
	m.Counter("runnel_log_cleaner_segments_total", "Segment files the cleaner rewrote.", float64(cl.Segments), nil)
	m.Counter("runnel_log_cleaner_read_bytes_total", "Bytes the cleaner read (bounded with writes by log.cleaner-bytes-per-sec).", float64(cl.BytesRead), nil)
	m.Counter("runnel_log_cleaner_written_bytes_total", "Bytes the cleaner wrote (cleaned segments).", float64(cl.BytesWritten), nil)
	m.Counter("runnel_log_cleaner_removed_records_total", "Records the cleaner removed (superseded by a later record of their key, or tombstones past delete.retention.ms).", float64(cl.RecordsRemoved), nil)
	m.Counter("runnel_log_cleaner_aborted_total", "Cleaning passes given up (a segment changed under the pass, or an I/O error); nothing is lost by one.", float64(cl.Aborted), nil)
	m.Gauge("runnel_log_cleaner_max_dirty_ratio", "Largest share of a compacted partition not cleaned yet.", cl.MaxDirtyRatio, nil)
	if !cl.LastPass.IsZero() {
		m.Gauge("runnel_log_cleaner_last_pass_timestamp_seconds", "When the last cleaning pass ended (unix seconds).", float64(cl.LastPass.UnixNano())/1e9, nil)
	}
	m.Gauge("runnel_log_torn_tail_bytes", "Bytes of torn tails truncated at the last open (expected after power loss).", float64(st.TornTailBytes), nil)
	m.Gauge("runnel_disk_free_bytes", "Free bytes on the data directory's file system.", float64(st.DiskFreeBytes), nil)
	m.Gauge("runnel_disk_total_bytes", "Size of the data directory's file system.", float64(st.DiskTotalBytes), nil)
	m.Gauge("runnel_disk_short", "1 when free space is under the guard threshold.", b2f(st.DiskShort), nil)
	m.Gauge("runnel_log_open_files", "Open segment and index files.", float64(st.OpenFiles), nil)
	m.Gauge("runnel_log_partitions", "Partitions in the log.", float64(st.Partitions), nil)
	m.Gauge("runnel_log_readonly_partitions", "Partitions read-only after an I/O error.", float64(len(st.ReadOnly)), nil)
	m.Gauge("runnel_log_damaged_files", "Corruptions found in stored data at open.", float64(len(st.Damaged)), nil)
	for _, t := range s.opts.Log.Topics() {
		for _, p := range t.Partitions {
			l := Labels{"topic": t.Name, "partition": strconv.Itoa(int(p.Partition))}
			m.Gauge("runnel_partition_start_offset", "Log-start offset per partition.", float64(p.Start), l)
			m.Gauge("runnel_partition_end_offset", "High-water mark per partition.", float64(p.HWM), l)
			m.Gauge("runnel_partition_bytes", "Bytes on disk per partition.", float64(p.Bytes), l)
			if t.Config.Compacted() {
				m.Gauge("runnel_partition_dirty_ratio", "Share of a compacted partition not cleaned yet.", p.DirtyRatio, l)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// httpMetrics writes the HTTP surface's counters and the box figures the
// dashboard shows (clock, device writes, eMMC wear, disk forecast).
func (s *Server) httpMetrics(m *Metrics) {
	c := &s.stats
	m.Counter("runnel_http_produce_records_total", "Records appended through HTTP produce.", float64(c.producedRecords.Load()), nil)
	m.Counter("runnel_http_produce_bytes_total", "Record-batch bytes appended through HTTP produce.", float64(c.producedBytes.Load()), nil)
	m.Counter("runnel_http_produce_failed_records_total", "HTTP records the log refused or failed.", float64(c.produceFailed.Load()), nil)
	m.Counter("runnel_http_produce_refused_total", "HTTP produce requests refused before storing anything (4xx).", float64(c.produceRefused.Load()), nil)
	m.Counter("runnel_http_mqtt_published_total", "MQTT publishes made over HTTP.", float64(c.mqttPublished.Load()), nil)
	m.Counter("runnel_http_mqtt_failed_total", "MQTT publishes over HTTP refused or failed.", float64(c.mqttFailed.Load()), nil)
	m.Gauge("runnel_http_tail_clients", "Open live tails (Server-Sent Events).", float64(c.tailClients.Load()), nil)
	m.Counter("runnel_http_tail_records_total", "Records sent on live tails.", float64(c.tailEvents.Load()), nil)
	m.Counter("runnel_http_tail_cut_total", "Live tails disconnected because the client did not read.", float64(c.tailCut.Load()), nil)
	m.Counter("runnel_http_auth_failures_total", "HTTP requests refused for missing or wrong credentials.", float64(c.authFailures.Load()), nil)
	if w, ok := processWriteBytes(); ok {
		m.Counter("runnel_process_write_bytes_total", "Bytes this process caused to be written to storage (/proc/self/io write_bytes).", float64(w), nil)
	}
	if w, ok := deviceWrittenBytes(s.device); ok {
		m.Counter("runnel_device_write_bytes_total", "Bytes written to the data directory's device since boot, by every process.", float64(w), Labels{"device": s.device})
	}
	for _, e := range emmcWear() {
		m.Gauge("runnel_emmc_life_time_estimate", "eMMC life-time estimate (1 = 0-10% of rated erase cycles used ... 10 = 90-100%, 11 = exceeded).", float64(e.LifeTimeA), Labels{"device": e.Device, "type": "a"})
		m.Gauge("runnel_emmc_life_time_estimate", "eMMC life-time estimate (1 = 0-10% of rated erase cycles used ... 10 = 90-100%, 11 = exceeded).", float64(e.LifeTimeB), Labels{"device": e.Device, "type": "b"})
		m.Gauge("runnel_emmc_pre_eol", "eMMC pre-end-of-life state (1 normal, 2 warning, 3 urgent).", float64(e.PreEOL), Labels{"device": e.Device})
	}
	if clk := clockState(); clk.Known {
		m.Gauge("runnel_clock_synchronized", "1 when the kernel reports the system clock synchronised (adjtimex).", b2f(clk.Synchronized), nil)
		m.Gauge("runnel_clock_max_error_seconds", "The kernel's maximum clock error estimate (adjtimex).", float64(clk.MaxErrorMicros)/1e6, nil)
	}
	if h := math.Float64frombits(s.hoursUntilFull.Load()); !math.IsNaN(h) && !math.IsInf(h, 0) {
		m.Gauge("runnel_disk_hours_until_full", "Hours until free space reaches the guard at the net ingest rate last measured by /api/overview.", h, nil)
	}
}
