package group_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"
)

// kcatPath finds kcat; a missing kcat skips, or fails under CI=true.
func kcatPath(t *testing.T) string {
	t.Helper()
	reexec.SkipNativeChildIfEmulated(t, "kcat")
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not in PATH (apt-get install kcat)")
		}
		t.Skip("kcat is not in PATH (apt-get install kcat); skipping")
	}
	return p
}

// kcatGroup runs a kcat balanced consumer (-G) until it has read count
// records, and returns their values.
func kcatGroup(t *testing.T, kcat, addr, grp, topic string, count int, extra ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	args := []string{"-b", addr, "-G", grp, "-c", fmt.Sprint(count), "-f", "%s\n", "-q",
		"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100",
		"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200"}
	args = append(args, extra...)
	args = append(args, topic)
	cmd := exec.CommandContext(ctx, kcat, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr: %s\nstdout: %d lines", strings.Join(args, " "), err, errb.String(), strings.Count(out.String(), "\n"))
	}
	return strings.Fields(out.String())
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	slices.Sort(out)
	return out
}

// TestKcatGroupCommitsSurviveRestart: a librdkafka (kcat -G) group reads a
// topic, commits, and after a server restart on the same data dir reads
// exactly the records produced since.
func TestKcatGroupCommitsSurviveRestart(t *testing.T) {
	kcat := kcatPath(t)
	for _, strategy := range []string{"range,roundrobin", "cooperative-sticky"} {
		t.Run(strings.ReplaceAll(strategy, ",", "+"), func(t *testing.T) {
			dir := t.TempDir()
			n := startNode(t, dir)
			const topic, grp = "kc", "kcat-group"
			createTopic(t, n.log, topic, 3)
			produce(t, n.addr, topic, "one", 60)
			x := []string{"-X", "partition.assignment.strategy=" + strategy}
			got := kcatGroup(t, kcat, n.addr, grp, topic, 60, x...)
			slices.Sort(got)
			if !slices.Equal(got, values("one", 60)) {
				t.Fatalf("first read: %d records %v...", len(got), got[:min(5, len(got))])
			}

			n.stop()
			n = startNode(t, dir)
			produce(t, n.addr, topic, "two", 30)
			got = kcatGroup(t, kcat, n.addr, grp, topic, 30, x...)
			slices.Sort(got)
			if !slices.Equal(got, values("two", 30)) {
				t.Fatalf("after restart: %d records, first %v (committed offsets lost?)", len(got), got[:min(5, len(got))])
			}
		})
	}
}

// TestKcatTwoMembers: two librdkafka members of one group split a topic
// (eager range and cooperative-sticky) and together read every record.
func TestKcatTwoMembers(t *testing.T) {
	kcat := kcatPath(t)
	for _, strategy := range []string{"range", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) { kcatTwoMembers(t, kcat, strategy) })
	}
}

func kcatTwoMembers(t *testing.T, kcat, strategy string) {
	n := startNode(t, t.TempDir())
	const topic, grp = "kc2", "kcat-pair"
	createTopic(t, n.log, topic, 4)
	produce(t, n.addr, topic, "p", 200)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var mu sync.Mutex
	seenBy := map[int]map[string]bool{}
	all := map[string]bool{}
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := exec.CommandContext(ctx, kcat, "-b", n.addr, "-G", grp, "-f", "%s\n", "-q", "-u",
			"-X", "auto.offset.reset=earliest", "-X", "partition.assignment.strategy="+strategy,
			"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200", topic)
		if f := os.Getenv("KCAT_DEBUG"); f != "" {
			cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "-d", "cgrp,protocol", topic)
			ef, _ := os.Create(fmt.Sprintf("%s.%d", f, i))
			cmd.Stderr = ef
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		seenBy[i] = map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				seenBy[i][sc.Text()] = true
				all[sc.Text()] = true
				mu.Unlock()
			}
		}()
		if i == 0 {
			waitFor(t, "the first kcat member to read", 20*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(all) == 200
			})
		}
	}
	// Keep producing until the second member owns partitions.
	deadline := time.Now().Add(25 * time.Second)
	total := 200
	for batch := 0; ; batch++ {
		mu.Lock()
		second := len(seenBy[1])
		mu.Unlock()
		if second > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second kcat member never got records")
		}
		produce(t, n.addr, topic, fmt.Sprintf("q%d", batch), 20)
		total += 20
		time.Sleep(200 * time.Millisecond)
	}
	waitFor(t, "every record", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(all) == total
	})
	for _, cmd := range cmds {
		cmd.Process.Signal(os.Interrupt)
	}
	wg.Wait()
	for _, cmd := range cmds {
		cmd.Wait()
	}
	t.Logf("kcat members read %d and %d of %d records; coordinator %+v", len(seenBy[0]), len(seenBy[1]), total, n.coord.Stats())
}
