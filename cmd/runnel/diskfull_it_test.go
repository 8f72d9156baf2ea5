package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mountTmpfs mounts a size-limited tmpfs (root only). Where mounting is
// impossible the test is skipped with the reason, except under CI=true.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "small")
	os.MkdirAll(mnt, 0o755)
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a small tmpfs (needs root): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// TestIntegrationMQTTDiskFullReject fills a small file system under
// on-full=reject: an MQTT 5 client gets PUBACK reason 0x97 (quota
// exceeded), nothing acknowledged is lost, and publishing resumes once space
// is freed.
func TestIntegrationMQTTDiskFullReject(t *testing.T) {
	needTool(t, "kcat")
	mnt := mountTmpfs(t, "32m")
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{1}, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startRunnel(t, 1, "--data-dir", filepath.Join(mnt, "data"), "--min-free-bytes", "6291456", "--segment-bytes", "1048576", "--on-full", "reject")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", s.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "filler", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	payload := func(i int) []byte { return []byte(fmt.Sprintf("%06d-%s", i, strings.Repeat("z", 8<<10))) }

	var acked []int
	rejected := false
	for i := 0; i < 4000 && !rejected; i++ {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "fill/x", QoS: 1, Payload: payload(i)})
		switch {
		case err == nil:
			acked = append(acked, i)
		case resp != nil && resp.ReasonCode == 0x97:
			rejected = true
		default:
			t.Fatalf("publish %d: %v (resp %+v)", i, err, resp)
		}
	}
	if !rejected {
		t.Fatalf("no 0x97 after %d publishes of 8 KiB into a 32 MiB file system", len(acked))
	}
	t.Logf("%d messages acknowledged before the disk guard refused with 0x97", len(acked))

	// Free space: publishing resumes.
	os.Remove(ballast)
	next := len(acked) + 100000
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Publish(ctx, &paho.Publish{Topic: "fill/x", QoS: 1, Payload: payload(next)})
		if err == nil {
			acked = append(acked, next)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing did not resume after freeing space: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every acknowledged message is stored, in order, across a restart.
	s.Stop(t)
	s.Restart(t)
	out := runTool(t, 60*time.Second, "", "kcat", "-C", "-b", s.Addr(), "-t", "mqtt", "-o", "beginning", "-e", "-q", "-f", "%s\n")
	var got []int
	for _, l := range lines(out) {
		var n int
		fmt.Sscanf(l, "%06d-", &n)
		got = append(got, n)
	}
	// Rejected messages are not stored; acknowledged ones are, in order.
	j := 0
	for _, n := range got {
		if j < len(acked) && n == acked[j] {
			j++
		}
	}
	if j != len(acked) {
		t.Fatalf("only %d of %d acknowledged messages read back in order (read %d)", j, len(acked), len(got))
	}
}
