package main

// The Debian package, built by systemd/package.sh as `make package` does,
// installed with dpkg into a fresh root made by the test (maintainer scripts
// run chrootless with DPKG_ROOT), checked file by file, run with its shipped
// config, removed and purged; and lintian on it.

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// packageFile is one path the package installs, as dpkg must leave it.
type packageFile struct {
	path  string
	mode  fs.FileMode // permission bits, plus fs.ModeDir for directories
	owner string      // user:group
}

// shippedFiles is what the package installs, besides its directories.
var shippedFiles = []packageFile{
	{"/usr/bin/runnel", 0o755, "root:root"},
	{"/usr/lib/systemd/system/runnel.service", 0o644, "root:root"},
	{"/usr/lib/sysusers.d/runnel.conf", 0o644, "root:root"},
	{"/usr/lib/tmpfiles.d/runnel.conf", 0o644, "root:root"},
	{"/etc/runnel/runnel.yaml", 0o644, "root:root"},
	{"/usr/share/man/man1/runnel.1.gz", 0o644, "root:root"},
	{"/usr/share/doc/runnel/copyright", 0o644, "root:root"},
	{"/usr/share/doc/runnel/changelog.gz", 0o644, "root:root"},
	{"/usr/share/lintian/overrides/runnel", 0o644, "root:root"},
}

// pkgBuild is the amd64 package built once per package run.
var pkgBuild struct {
	once         sync.Once
	deb, tarball string
	err          error
}

// buildPackage builds the amd64 .deb and tarball (once per package run),
// from a static binary built as `make build-all` builds it.
func buildPackage(t *testing.T) (deb, tarball string) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("the package test installs the amd64 package; this is %s", runtime.GOARCH)
	}
	needTool(t, "dpkg-deb")
	pkgBuild.once.Do(func() { pkgBuild.deb, pkgBuild.tarball, pkgBuild.err = makePackage(itBin.dir) })
	if pkgBuild.err != nil {
		t.Fatal(pkgBuild.err)
	}
	return pkgBuild.deb, pkgBuild.tarball
}

const pkgVersion = "v1.2.3-4-gabcdef0" // a git describe past a tag

func makePackage(dir string) (deb, tarball string, err error) {
	bin := filepath.Join(dir, "runnel-linux-amd64")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+pkgVersion, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "pkg")
	res, err := exec.CommandContext(ctx, "../../systemd/package.sh", out, pkgVersion, "amd64", bin).Output()
	if err != nil {
		return "", "", fmt.Errorf("package.sh: %v", err)
	}
	want := []string{filepath.Join(out, "runnel_1.2.3+4.gabcdef0_amd64.deb"), filepath.Join(out, "runnel-"+pkgVersion+"-linux-amd64.tar.gz")}
	if got := lines(string(res)); !slices.Equal(got, want) {
		return "", "", fmt.Errorf("package.sh wrote %q, want %q", got, want)
	}
	return want[0], want[1], nil
}

// freshRoot makes an empty dpkg root: a status database and the passwd and
// group files of a new system.
func freshRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkgIn runs dpkg on root with the maintainer scripts outside a chroot
// (they honour DPKG_ROOT) and the adduser dependency not installed there
// (the scripts use systemd-sysusers when it is present).
func dpkgIn(t *testing.T, root string, args ...string) string {
	t.Helper()
	return runTool(t, 2*time.Minute, "", "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)...)
}

// idsOf maps the names in a passwd or group file of root to their ids.
func idsOf(t *testing.T, root, file string) map[string]uint32 {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]uint32{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 {
			if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
				ids[fields[0]] = uint32(id)
			}
		}
	}
	return ids
}

// checkFile checks mode and owner of path inside root.
func checkFile(t *testing.T, root string, f packageFile, users, groups map[string]uint32) {
	t.Helper()
	st, err := os.Lstat(filepath.Join(root, f.path))
	if err != nil {
		t.Errorf("%s: %v", f.path, err)
		return
	}
	if got := st.Mode() & (fs.ModePerm | fs.ModeDir | fs.ModeSymlink); got != f.mode {
		t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
	}
	user, group, _ := strings.Cut(f.owner, ":")
	uid, ok1 := users[user]
	gid, ok2 := groups[group]
	sys := st.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || sys.Uid != uid || sys.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %s (%d:%d in the root's passwd and group)", f.path, sys.Uid, sys.Gid, f.owner, uid, gid)
	}
}

// TestPackageInstall installs the amd64 package into a fresh root and
// checks what dpkg and the maintainer scripts leave there, runs the
// installed binary with the shipped config, then removes and purges it.
func TestPackageInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs a package: skipped with -short")
	}
	needTool(t, "dpkg")
	needTool(t, "systemd-sysusers")
	needTool(t, "systemd-tmpfiles")
	deb, _ := buildPackage(t)
	root := freshRoot(t)
	dpkgIn(t, root, "--install", deb)

	// The file list: every shipped file, nothing else but directories.
	var listed []string
	for _, p := range lines(runTool(t, time.Minute, "", "dpkg-query", "--root="+root, "--listfiles", "runnel")) {
		if st, err := os.Lstat(filepath.Join(root, p)); err == nil && !st.IsDir() {
			listed = append(listed, p)
		}
	}
	var want []string
	for _, f := range shippedFiles {
		want = append(want, f.path)
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("installed files %q, want %q", listed, want)
	}
	status := runTool(t, time.Minute, "", "dpkg-query", "--root="+root, "-W", "-f=${Status} ${Version}\n${Conffiles}\n", "runnel")
	if !strings.HasPrefix(status, "install ok installed 1.2.3+4.gabcdef0\n") || !strings.Contains(status, " /etc/runnel/runnel.yaml ") {
		t.Errorf("dpkg-query: %q, want installed with /etc/runnel/runnel.yaml as a conffile", status)
	}

	// Owners and modes, including what postinst made: the runnel system
	// user and its data directory.
	users, groups := idsOf(t, root, "passwd"), idsOf(t, root, "group")
	if uid, ok := users["runnel"]; !ok || uid == 0 || uid >= 1000 {
		t.Fatalf("postinst made no runnel system user (passwd ids %v)", users)
	}
	for _, f := range append(shippedFiles,
		packageFile{"/var/lib/runnel", fs.ModeDir | 0o750, "runnel:runnel"},
		packageFile{"/etc/runnel", fs.ModeDir | 0o755, "root:root"},
		packageFile{"/usr/bin", fs.ModeDir | 0o755, "root:root"},
	) {
		checkFile(t, root, f, users, groups)
	}
	// Nothing enabled or started without being asked.
	if m, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*/runnel.service")); len(m) > 0 {
		t.Errorf("the package enabled the unit: %q", m)
	}

	// The installed binary, with the shipped config: it starts (the data
	// dir and the listeners moved to the test's, the rest as shipped), takes
	// records and serves them back.
	bin := filepath.Join(root, "usr/bin/runnel")
	if v := runTool(t, time.Minute, "", bin, "version"); !strings.Contains(v, pkgVersion) {
		t.Errorf("runnel version: %q", v)
	}
	dir := t.TempDir()
	s := &runnelServer{
		bin: bin, dir: dir,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		logPath:      filepath.Join(dir, "server.log"),
		startTimeout: 30 * time.Second, stopTimeout: 15 * time.Second,
		extra: []string{"--config", filepath.Join(root, "etc/runnel/runnel.yaml")},
	}
	t.Cleanup(func() { s.kill() })
	if err := s.start(); err != nil {
		t.Fatalf("start with the shipped config: %v\n%s", err, s.LogTail())
	}
	runTool(t, time.Minute, "a\nb\nc\n", bin, "produce", "telemetry", "--brokers", s.Addr(), "--acks", "-1")
	if got := runTool(t, time.Minute, "", bin, "consume", "telemetry", "--brokers", s.Addr(), "--from-beginning", "-n", "3"); !slices.Equal(lines(got), []string{"a", "b", "c"}) {
		t.Errorf("consume: %q", got)
	}
	s.Stop(t)

	// Remove keeps the conffile; purge removes it and keeps the event log
	// (and says so).
	dpkgIn(t, root, "--remove", "runnel")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/runnel")); !os.IsNotExist(err) {
		t.Errorf("binary after remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/runnel/runnel.yaml")); err != nil {
		t.Errorf("conffile after remove: %v", err)
	}
	purge := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--force-depends", "--log=/dev/null", "--purge", "runnel")
	out, err := purge.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/runnel/runnel.yaml")); !os.IsNotExist(err) {
		t.Errorf("conffile after purge: %v", err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/lib/runnel")); err != nil || !st.IsDir() || !strings.Contains(string(out), "kept the event log") {
		t.Errorf("purge must keep /var/lib/runnel and say so: %v\n%s", err, out)
	}
}

// TestPackageLintian runs lintian on the amd64 package: every tag it
// reports (pedantic and informational included) fails, unless the
// package's overrides file explains it.
func TestPackageLintian(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package: skipped with -short")
	}
	needTool(t, "lintian")
	deb, _ := buildPackage(t)
	cmd := exec.Command("lintian", "--info", "--display-info", "--pedantic", "--no-tag-display-limit", deb)
	out, err := cmd.CombinedOutput()
	var tags []string
	for _, l := range lines(string(out)) {
		if len(l) > 2 && strings.Contains("EWIPX", l[:1]) && l[1] == ':' {
			tags = append(tags, l)
		}
	}
	if err != nil || len(tags) > 0 {
		t.Fatalf("lintian %s: %v\n%s", filepath.Base(deb), err, strings.Join(tags, "\n")+fmt.Sprintf("\n(full output: %d bytes)", len(out)))
	}
}

// TestPackageTarball: the tarball holds the package's files under one
// folder, plus INSTALL.
func TestPackageTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package: skipped with -short")
	}
	_, tarball := buildPackage(t)
	top := strings.TrimSuffix(filepath.Base(tarball), ".tar.gz")
	var got []string
	for _, l := range lines(runTool(t, time.Minute, "", "tar", "-tzf", tarball)) {
		if !strings.HasSuffix(l, "/") {
			got = append(got, strings.TrimPrefix(l, top))
		}
	}
	want := []string{"/INSTALL"}
	for _, f := range shippedFiles {
		want = append(want, f.path)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tarball files %q, want %q", got, want)
	}
}
