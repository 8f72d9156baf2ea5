package main

// The shipped systemd unit, checked by systemd's own tools offline.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// systemdAnalyze returns the path of systemd-analyze, skipping when it is
// missing or cannot run here (a container without systemd's runtime is not
// a fault of the unit).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("skipping: systemd-analyze not found (apt-get install systemd); the unit is not checked")
	}
	if out, err := exec.Command(p, "--version").CombinedOutput(); err != nil {
		t.Skipf("skipping: systemd-analyze cannot run in this environment (%v: %s); the unit is not checked", err, out)
	}
	return p
}

// TestSystemdUnit: `systemd-analyze verify` accepts the unit without a
// word, and `systemd-analyze security` scores it no worse than the target
// its comments promise.
func TestSystemdUnit(t *testing.T) {
	sa := systemdAnalyze(t)
	unit, err := os.ReadFile("../../systemd/runnel.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/runnel serve --config /etc/runnel/runnel.yaml\n") {
		t.Fatal("ExecStart is not the packaged binary with the packaged config")
	}

	// verify checks that ExecStart is executable: point it at a real build
	// (the package installs it at /usr/bin/runnel), the rest unchanged.
	dir := t.TempDir()
	u := filepath.Join(dir, "runnel.service")
	if err := os.WriteFile(u, []byte(strings.Replace(string(unit), "ExecStart=/usr/bin/runnel ", "ExecStart="+runnelBinary(t)+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", u).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	m := regexp.MustCompile(`scores this unit ([0-9.]+) \(target:\n#\s+([0-9.]+) or lower`).FindStringSubmatch(string(unit))
	if m == nil {
		t.Fatal("the unit's comments name no security score target")
	}
	target, _ := strconv.ParseFloat(m[2], 64)
	out, err = exec.Command(sa, "security", "--offline=true", u).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	sm := regexp.MustCompile(`Overall exposure level for runnel.service: ([0-9.]+)`).FindSubmatch(out)
	if sm == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(sm[1]), 64)
	t.Logf("systemd-analyze security: %.1f (target %.1f, comment says %s)", score, target, m[1])
	if score > target {
		t.Errorf("security exposure %.1f, over the target %.1f in the unit's comments", score, target)
	}
	if m[1] != string(sm[1]) {
		t.Errorf("the unit's comments say it scores %s; systemd-analyze says %s", m[1], sm[1])
	}
}
