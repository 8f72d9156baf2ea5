package reexec

import (
	"os"
	"strings"
	"testing"
)

// TestCommandRunsThisBinary: the child is this test binary (it answers the
// child branch), directly or through the emulator named in the environment.
func TestCommandRunsThisBinary(t *testing.T) {
	if os.Getenv("REEXEC_TEST_CHILD") == "1" {
		os.Stdout.WriteString("child ran\n")
		return
	}
	cmd := Command("-test.run=^TestCommandRunsThisBinary$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REEXEC_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v: %s", cmd.Args, err, out)
	}
	if !strings.Contains(string(out), "child ran") {
		t.Fatalf("child output %q lacks its mark", out)
	}
}

func TestCommandEmulatorArgs(t *testing.T) {
	t.Setenv(EmulatorEnv, "qemu-aarch64 -cpu max")
	cmd := Command("-test.v")
	want := []string{"qemu-aarch64", "-cpu", "max", os.Args[0], "-test.v"}
	if strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Fatalf("args %q, want %q", cmd.Args, want)
	}
	t.Setenv(EmulatorEnv, "")
	if cmd := Command("-x"); cmd.Args[0] != os.Args[0] || len(cmd.Args) != 2 {
		t.Fatalf("args without emulator %q", cmd.Args)
	}
}
