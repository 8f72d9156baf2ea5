package web

import (
	"math"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// IngestCount is a protocol's totals since start (Options.Ingest).
type IngestCount struct {
	Records uint64
	Bytes   uint64
}

// ClockInfo is the state of the system clock.
type ClockInfo struct {
	Known          bool   `json:"known"`
	Synchronized   bool   `json:"synchronized"`
	MaxErrorMicros int64  `json:"max_error_us"`
	EstErrorMicros int64  `json:"est_error_us"`
	Source         string `json:"source"`
}

// EMMCInfo is one eMMC device's wear estimate.
type EMMCInfo struct {
	Device    string `json:"device"`
	LifeTimeA int    `json:"life_time_a"` // 1 = 0-10% used ... 10 = 90-100%, 11 = exceeded
	LifeTimeB int    `json:"life_time_b"`
	PreEOL    int    `json:"pre_eol"` // 1 normal, 2 warning, 3 urgent
}

// rateWindow is the span rates are measured over (the samples taken by
// requests in it: the server samples only when asked, so an idle box with
// no dashboard open does no work).
const (
	rateWindow    = time.Minute
	sampleSpacing = 2 * time.Second
	keepSamples   = 15 * time.Minute
)

// sample is the counters at one moment.
type sample struct {
	at         time.Time
	ingest     map[string]IngestCount
	appended   uint64 // log bytes appended
	fsyncs     uint64
	fsyncNanos uint64
	procWrite  uint64 // /proc/self/io write_bytes
	devWrite   uint64 // the data device's written bytes (all processes)
	diskFree   int64
	haveProc   bool
	haveDev    bool
}

// sampler keeps recent samples for rates.
type sampler struct {
	mu      sync.Mutex
	first   sample   // at start
	samples []sample // guarded by mu, oldest first
}

func (s *Server) takeSample() sample {
	st := s.opts.Log.Stats()
	sm := sample{at: time.Now(), ingest: map[string]IngestCount{}, appended: st.AppendedBytes, fsyncs: st.Fsyncs, fsyncNanos: st.FsyncNanos, diskFree: st.DiskFreeBytes}
	for name, fn := range s.opts.Ingest {
		sm.ingest[name] = fn()
	}
	sm.ingest["http"] = IngestCount{
		Records: s.stats.producedRecords.Load() + s.stats.mqttPublished.Load(),
		Bytes:   s.stats.producedBytes.Load(),
	}
	sm.procWrite, sm.haveProc = processWriteBytes()
	sm.devWrite, sm.haveDev = deviceWrittenBytes(s.device)
	return sm
}

// window records a sample now and returns it with the oldest kept sample
// at most rateWindow old (and at least sampleSpacing old), for rates.
func (s *Server) window() (now, then sample, ok bool) {
	now = s.takeSample()
	sp := &s.sampler
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if n := len(sp.samples); n == 0 || now.at.Sub(sp.samples[n-1].at) >= sampleSpacing {
		sp.samples = append(sp.samples, now)
	}
	cut := 0
	for cut < len(sp.samples) && now.at.Sub(sp.samples[cut].at) > keepSamples {
		cut++
	}
	sp.samples = slices.Delete(sp.samples, 0, cut)
	for _, x := range sp.samples {
		if d := now.at.Sub(x.at); d <= rateWindow && d >= sampleSpacing {
			return now, x, true
		}
	}
	return now, sample{}, false
}

// longWindow is the oldest kept sample (up to keepSamples), for the disk
// forecast, which needs a longer view than the rates.
func (s *Server) longWindow(now sample) (sample, bool) {
	sp := &s.sampler
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, x := range sp.samples {
		if now.at.Sub(x.at) >= forecastMin {
			return x, true
		}
	}
	return sample{}, false
}

// forecastMin is the shortest view the disk forecast is made from (a
// shorter one follows every burst of writes on the file system).
const forecastMin = time.Minute

type ingestRate struct {
	Protocol      string  `json:"protocol"`
	Records       uint64  `json:"records_total"`
	Bytes         uint64  `json:"bytes_total"`
	RecordsPerSec float64 `json:"records_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
}

type alarm struct {
	Severity string `json:"severity"` // "critical" or "warning"
	Message  string `json:"message"`
}

func rate(a, b uint64, d time.Duration) float64 {
	if d <= 0 || a < b {
		return 0
	}
	return float64(a-b) / d.Seconds()
}

// overview serves GET /api/overview: what the dashboard's first page
// shows, in one answer.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	now, then, ok := s.window()
	d := now.at.Sub(then.at)
	st := s.opts.Log.Stats()
	uptime := time.Since(s.started)
	out := map[string]any{
		"node_id":        s.opts.NodeID,
		"site":           s.opts.Site,
		"version":        s.opts.Version,
		"uptime_seconds": int64(uptime.Seconds()),
		"started":        s.started.UTC().Format(time.RFC3339),
		"now":            now.at.UTC().Format(time.RFC3339),
		"rate_window_s":  math.Round(d.Seconds()),
		"goroutines":     runtime.NumGoroutine(),
	}
	var rates []ingestRate
	for name, c := range now.ingest {
		ir := ingestRate{Protocol: name, Records: c.Records, Bytes: c.Bytes}
		if ok {
			p := then.ingest[name]
			ir.RecordsPerSec, ir.BytesPerSec = rate(c.Records, p.Records, d), rate(c.Bytes, p.Bytes, d)
		}
		rates = append(rates, ir)
	}
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(rates, func(i, j int) bool { return rates[i].Protocol < rates[j].Protocol })
	out["ingest"] = rates

	// Disk: free space and when it runs out at the net rate of the last
	// minutes (appends minus what retention frees, as the file system
	// sees it).
	disk := map[string]any{
		"free_bytes":     st.DiskFreeBytes,
		"total_bytes":    st.DiskTotalBytes,
		"short":          st.DiskShort,
		"min_free_bytes": s.opts.MinFreeBytes,
		"on_full":        s.opts.OnFull,
		"device":         s.device,
	}
	var hours any
	if old, ok := s.longWindow(now); ok {
		dt := now.at.Sub(old.at).Seconds()
		net := float64(old.diskFree-now.diskFree) / dt
		disk["net_growth_bytes_per_sec"] = net
		if net > 0 {
			h := float64(max(now.diskFree-s.opts.MinFreeBytes, 0)) / net / 3600
			hours = math.Round(h*10) / 10
			s.hoursUntilFull.Store(math.Float64bits(h))
		} else {
			s.hoursUntilFull.Store(math.Float64bits(math.Inf(1)))
		}
	}
	disk["hours_until_full"] = hours
	out["disk"] = disk

	// Device writes: SD-card and eMMC wear.
	wr := map[string]any{"appended_bytes_total": st.AppendedBytes}
	if now.haveProc {
		wr["process_write_bytes_total"] = now.procWrite
		wr["process_write_bytes_per_day_since_start"] = float64(now.procWrite) / uptime.Seconds() * 86400
		if st.AppendedBytes > 0 {
			wr["device_bytes_per_byte_since_start"] = float64(now.procWrite) / float64(st.AppendedBytes)
		}
		if ok {
			wr["process_write_bytes_per_day"] = rate(now.procWrite, then.procWrite, d) * 86400
			if da := now.appended - then.appended; da > 0 {
				wr["device_bytes_per_byte"] = float64(now.procWrite-then.procWrite) / float64(da)
			}
		}
	}
	if now.haveDev && ok {
		wr["device_write_bytes_per_day"] = rate(now.devWrite, then.devWrite, d) * 86400
	}
	wear := emmcWear()
	if wear == nil {
		wear = []EMMCInfo{}
	}
	wr["emmc"] = wear
	out["writes"] = wr

	fs := map[string]any{"fsyncs_total": st.Fsyncs}
	if st.Fsyncs > 0 {
		fs["mean_ms_since_start"] = float64(st.FsyncNanos) / float64(st.Fsyncs) / 1e6
	}
	if ok && now.fsyncs > then.fsyncs {
		fs["mean_ms"] = float64(now.fsyncNanos-then.fsyncNanos) / float64(now.fsyncs-then.fsyncs) / 1e6
		fs["per_sec"] = rate(now.fsyncs, then.fsyncs, d)
	}
	out["fsync"] = fs
	clk := clockState()
	out["clock"] = clk

	ro := []map[string]any{}
	for _, p := range st.ReadOnly {
		ro = append(ro, map[string]any{"topic": p.Topic, "partition": p.Partition, "error": p.Err.Error()})
	}
	out["read_only"] = ro
	alarms := []alarm{}
	for _, p := range st.ReadOnly {
		alarms = append(alarms, alarm{"critical", "partition " + p.Topic + "/" + strconv.Itoa(int(p.Partition)) + " is read-only: " + p.Err.Error()})
	}
	for _, dmg := range st.Damaged {
		alarms = append(alarms, alarm{"critical", "damaged data in " + dmg.File + ": " + dmg.Reason})
	}
	if st.DiskShort {
		alarms = append(alarms, alarm{"critical", "disk short: " + strconv.FormatInt(st.DiskFreeBytes, 10) + " bytes free; on-full " + s.opts.OnFull + " applies"})
	}
	if h, ok := hours.(float64); ok && h < 72 {
		alarms = append(alarms, alarm{"warning", "disk full in " + strconv.FormatFloat(h, 'f', 1, 64) + " h at the current net ingest rate"})
	}
	if clk.Known && !clk.Synchronized {
		alarms = append(alarms, alarm{"warning", "system clock not synchronised: record timestamps and backlog ages may be wrong"})
	}
	for _, e := range wear {
		if max(e.LifeTimeA, e.LifeTimeB) >= 9 || e.PreEOL >= 2 {
			alarms = append(alarms, alarm{"warning", "eMMC " + e.Device + " near the end of its rated life"})
		}
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			alarms = append(alarms, alarm{"critical", err.Error()})
		}
	}
	out["alarms"] = alarms
	writeJSON(w, out)
}
