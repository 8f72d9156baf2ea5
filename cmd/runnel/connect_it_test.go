package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// TestIntegrationKafkaConnect runs Apache Kafka Connect in distributed
// mode (its config, offset and status topics compacted, created by the
// worker through CreateTopics with cleanup.policy=compact and checked
// with DescribeConfigs) against the server: FileStreamSource from a file
// into a topic, FileStreamSink from the topic into another file. The
// worker is stopped and started again (the connectors come back from the
// config topic, the source resumes from the offset topic, the sink from
// its group's offsets) and more lines are appended: the output file ends
// equal to the input.
func TestIntegrationKafkaConnect(t *testing.T) {
	srv := startServer(t, 1)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.txt")
	var want strings.Builder
	appendLines := func(from, to int) {
		f, err := os.OpenFile(in, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			l := fmt.Sprintf("line %d: reading of sensor %d", i, i%17)
			fmt.Fprintln(f, l)
			want.WriteString(l + "\n")
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendLines(0, 500)
	rest := freeAddr(t)
	props := fmt.Sprintf(`bootstrap.servers=%s
group.id=runnel-it-connect
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
config.storage.topic=it-connect-configs
offset.storage.topic=it-connect-offsets
status.storage.topic=it-connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=500
listeners=http://%s
rest.advertised.host.name=127.0.0.1
`, srv.Addr(), rest)
	propsPath := filepath.Join(dir, "worker.properties")
	if err := os.WriteFile(propsPath, []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logPath := filepath.Join(dir, "worker.log")
	var worker *exec.Cmd
	var exited chan struct{} // closed when worker has exited
	start := func() {
		t.Helper()
		cmd, err := kafkatest.ToolCommand(ctx, "512M", "org.apache.kafka.connect.cli.ConnectDistributed", propsPath)
		if err != nil {
			t.Skipf("Apache Kafka's jars: %v", err)
		}
		lf, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lf.Close()
		worker, exited = cmd, make(chan struct{})
		go func(done chan struct{}) { cmd.Wait(); close(done) }(exited)
		// Ready once the REST API answers.
		for {
			if r, err := http.Get("http://" + rest + "/connectors"); err == nil {
				r.Body.Close()
				if r.StatusCode == 200 {
					return
				}
			}
			select {
			case <-exited:
				t.Fatalf("Connect worker exited at start\n%s", workerLog(logPath))
			case <-ctx.Done():
				t.Fatalf("Connect worker not ready\n%s", workerLog(logPath))
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	stop := func() {
		if worker == nil {
			return
		}
		worker.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			worker.Process.Kill()
			<-exited
		}
		worker = nil
	}
	t.Cleanup(stop)
	post := func(name string, cfg map[string]string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"name": name, "config": cfg})
		for {
			r, err := http.Post("http://"+rest+"/connectors", "application/json", bytes.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode == 201 || r.StatusCode == 409 && strings.Contains(string(b), "already exists") {
					return
				}
				// 409 "rebalance in progress" while the worker joins its group.
				if r.StatusCode != 409 {
					t.Fatalf("POST connector %s: %d %s\n%s", name, r.StatusCode, b, workerLog(logPath))
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("POST connector %s: %v\n%s", name, err, workerLog(logPath))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitOutput := func(what string) {
		t.Helper()
		for {
			got, _ := os.ReadFile(out)
			if string(got) == want.String() {
				return
			}
			if len(got) > want.Len() || ctx.Err() != nil {
				t.Fatalf("%s: output has %d bytes (%d lines), want %d bytes (%d lines) equal to the input\n%s",
					what, len(got), bytes.Count(got, []byte("\n")), want.Len(), strings.Count(want.String(), "\n"), workerLog(logPath))
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	start()
	post("it-file-source", map[string]string{
		"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
		"tasks.max":       "1", "file": in, "topic": "it-connect-data",
	})
	post("it-file-sink", map[string]string{
		"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
		"tasks.max":       "1", "file": out, "topics": "it-connect-data",
	})
	waitOutput("first run")
	// The worker's internal topics are compacted ones.
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, topic := range []string{"it-connect-configs", "it-connect-offsets", "it-connect-status"} {
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{"cleanup.policy"}
		req.Resources = append(req.Resources, rr)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 {
			t.Fatalf("DescribeConfigs %s: %v %+v", topic, err, resp)
		}
		if v := resp.Resources[0].Configs[0].Value; v == nil || *v != "compact" {
			t.Fatalf("%s: cleanup.policy %v, want compact", topic, v)
		}
	}
	stop()
	appendLines(500, 1000)
	start()
	waitOutput("after the worker restarted")
	t.Logf("%d lines through Connect, across a worker restart", strings.Count(want.String(), "\n"))
}

// workerLog is the end of the Connect worker's output.
func workerLog(path string) string {
	b, _ := os.ReadFile(path)
	return "--- Connect worker log ---\n" + tail(string(b), 6000)
}
