package web

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// clockState reads the kernel's clock discipline (adjtimex): whether NTP
// (or chrony, systemd-timesyncd) keeps the clock synchronised, and the
// estimated and maximum errors.
func clockState() ClockInfo {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return ClockInfo{Known: false, Source: "adjtimex: " + err.Error()}
	}
	return ClockInfo{
		Known:          true,
		Synchronized:   state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0,
		MaxErrorMicros: int64(tx.Maxerror),
		EstErrorMicros: int64(tx.Esterror),
		Source:         "adjtimex",
	}
}

// processWriteBytes is the bytes this process caused to be written to
// storage (/proc/self/io write_bytes, what reached the block layer).
func processWriteBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// deviceOf returns the /sys/block name of the disk holding dir (the whole
// device, for a partition), or "".
func deviceOf(dir string) string {
	var st unix.Stat_t
	if dir == "" || unix.Stat(dir, &st) != nil {
		return ""
	}
	link := "/sys/dev/block/" + strconv.FormatUint(uint64(unix.Major(st.Dev)), 10) + ":" + strconv.FormatUint(uint64(unix.Minor(st.Dev)), 10)
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
		p = filepath.Dir(p)
	}
	return filepath.Base(p)
}

// deviceWrittenBytes is what the device has been written since boot
// (/sys/block/DEV/stat, sectors of 512 bytes), by every process.
func deviceWrittenBytes(dev string) (uint64, bool) {
	if dev == "" {
		return 0, false
	}
	b, err := os.ReadFile("/sys/block/" + dev + "/stat")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[6], 10, 64)
	return n * 512, err == nil
}

// emmcWear reads the eMMC life-time estimates of every mmcblk device
// (JEDEC EXT_CSD DEVICE_LIFE_TIME_EST_TYP_A/B: 0x01 = 0-10% of the rated
// erase cycles used ... 0x0A = 90-100%, 0x0B = exceeded) and the
// pre-EOL state (0x01 normal, 0x02 warning: 80% of reserved blocks used,
// 0x03 urgent).
func emmcWear() []EMMCInfo {
	paths, _ := filepath.Glob("/sys/block/mmcblk*/device/life_time")
	var out []EMMCInfo
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		a, _ := strconv.ParseInt(strings.TrimPrefix(f[0], "0x"), 16, 32)
		bb, _ := strconv.ParseInt(strings.TrimPrefix(f[1], "0x"), 16, 32)
		e := EMMCInfo{Device: filepath.Base(filepath.Dir(filepath.Dir(p))), LifeTimeA: int(a), LifeTimeB: int(bb)}
		if pre, err := os.ReadFile(filepath.Join(filepath.Dir(p), "pre_eol_info")); err == nil {
			v, _ := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(string(pre)), "0x"), 16, 32)
			e.PreEOL = int(v)
		}
		out = append(out, e)
	}
	return out
}
