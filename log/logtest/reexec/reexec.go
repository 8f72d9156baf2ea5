// Package reexec starts the running test binary again as a child process,
// for tests that need a process of their own (to kill it with SIGKILL, to let
// it die of an out-of-memory error, to build a fixture in a clean address
// space).
//
// A test binary cross-built for another architecture runs under a user-mode
// emulator (go test -exec qemu-arm). The kernel cannot start that binary by
// itself unless binfmt_misc is set up for the emulator, which a container
// rarely has, so exec.Command(os.Args[0]) fails there with "exec format
// error". Command starts the child through the same emulator, named in
// $RUNNEL_TEST_EMULATOR (the Makefile's cross-test stage sets it, and go
// test's -exec runs the parent through it).
package reexec

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EmulatorEnv names the environment variable that holds the emulator command
// (for example "qemu-arm", or "qemu-aarch64 -cpu max"); empty or unset runs
// the binary directly.
const EmulatorEnv = "RUNNEL_TEST_EMULATOR"

// Command returns a command that runs this test binary (os.Args[0]) with
// args, through the emulator in $RUNNEL_TEST_EMULATOR when it is set. The
// child inherits the variable through os.Environ, so it can start children
// of its own the same way.
func Command(args ...string) *exec.Cmd { return CommandOf(os.Args[0], args...) }

// CommandOf is Command for a copy of the test binary at path (a test that
// runs it as another user copies it where that user can reach it).
func CommandOf(path string, args ...string) *exec.Cmd {
	emu := strings.Fields(os.Getenv(EmulatorEnv))
	if len(emu) == 0 {
		return exec.Command(path, args...)
	}
	argv := append(append(emu[1:len(emu):len(emu)], path), args...)
	return exec.Command(emu[0], argv...)
}

// Emulated reports whether tests run under the emulator named in
// $RUNNEL_TEST_EMULATOR.
func Emulated() bool { return strings.TrimSpace(os.Getenv(EmulatorEnv)) != "" }

// SkipIfEmulated skips a test whose timing assumptions (a session of
// seconds, a count within a deadline, commits shared by writers that come
// back within a wait) do not hold when every instruction is emulated, as
// tests skip under the race detector for the same reason. The native run
// keeps testing it; why says what does not hold.
func SkipIfEmulated(t testing.TB, why string) {
	t.Helper()
	if Emulated() {
		t.Skipf("timing under the emulator %q: %s", os.Getenv(EmulatorEnv), why)
	}
}

// SkipNativeChildIfEmulated skips a test that starts a native program (kcat,
// a mosquitto client or broker, java, python) from a test binary that runs
// under the emulator. qemu-user runs the test binary's vfork as a fork of
// the whole multi-threaded emulator, and until that copy execs it holds
// every descriptor the test had open, other children's output pipes
// included. An arm64 run of the MQTT tests hung in the cross-test stage
// with a client's output pipe still open when the package timed out (15
// minutes; the package takes 25 s), which no native run has shown. These
// tests keep running natively (make unit and race), and the real clients
// drive the armv7 and arm64 binaries in TestCrossSmoke, where the emulated
// process is the server and the clients are started natively. Children
// that are this test binary again (Command) still run under the emulator:
// the crash tests need them.
func SkipNativeChildIfEmulated(t testing.TB, tool string) {
	t.Helper()
	if Emulated() {
		t.Skipf("%s is not started from a test binary under the emulator %q (its fork can hang before exec); runs natively", tool, os.Getenv(EmulatorEnv))
	}
}
