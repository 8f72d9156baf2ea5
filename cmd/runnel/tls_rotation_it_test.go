package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTLSCertificateRotationUnderLoad: a producer writes over TLS
// without pause (acks=all, one record at a time) while the Kafka and HTTP
// listeners' certificate is replaced twice: once followed by SIGHUP, once
// by the file change alone. The process stays up, every acknowledged
// record is in the log afterwards, and each new connection (Kafka and
// HTTPS) is served the certificate on disk at that time.
func TestTLSCertificateRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	dir := t.TempDir()
	var cas, certs, keys [3]string
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprint(i))
		os.MkdirAll(d, 0o700)
		cas[i], certs[i], keys[i] = writeTestPKI(t, d)
	}
	live, liveKey := filepath.Join(dir, "live.pem"), filepath.Join(dir, "live.key")
	install := func(i int) {
		for _, f := range [][2]string{{certs[i], live}, {keys[i], liveKey}} {
			b, err := os.ReadFile(f[0])
			if err != nil {
				t.Fatal(err)
			}
			tmp := f[1] + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(0)
	pool := x509.NewCertPool()
	for _, ca := range cas {
		b, _ := os.ReadFile(ca)
		pool.AppendCertsFromPEM(b)
	}
	s := newRunnel(t, nil, 1, "--kafka-tls-cert", live, "--kafka-tls-key", liveKey, "--http-tls-cert", live, "--http-tls-key", liveKey)
	s.sec = clientSecurity{tls: true, caFile: cas[0]}
	if err := s.start(); err != nil {
		t.Fatalf("start: %v\n%s", err, s.LogTail())
	}
	pid := s.PID()
	tcfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	// served reports which of the three certificates a new connection to
	// addr gets (-1: none of them).
	served := func(addr string) int {
		c, err := tls.Dial("tcp", addr, tcfg)
		if err != nil {
			t.Fatalf("TLS dial %s: %v", addr, err)
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0].Raw
		for i, f := range certs {
			b, _ := os.ReadFile(f)
			blk, _ := pem.Decode(b)
			if bytes.Equal(blk.Bytes, leaf) {
				return i
			}
		}
		return -1
	}
	if a, b := served(s.kafka), served(s.http); a != 0 || b != 0 {
		t.Fatalf("before rotation: Kafka serves certificate %d, HTTPS %d; want 0", a, b)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka), kgo.DialTLSConfig(tcfg), kgo.DefaultProduceTopic("rot"),
		kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	go func() {
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			v := fmt.Sprintf("r%06d", i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				done <- fmt.Errorf("produce %s: %v", v, err)
				return
			}
			mu.Lock()
			acked = append(acked, v)
			mu.Unlock()
		}
		done <- nil
	}()
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcks := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for ackedN() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitAcks(50)
	install(1)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return served(s.kafka) == 1 && served(s.http) == 1 }, "new connections served certificate 1 after SIGHUP")
	n1 := ackedN()
	waitAcks(n1 + 50)

	install(2) // no signal: the file change is enough
	waitFor(t, 10*time.Second, func() bool { return served(s.kafka) == 2 && served(s.http) == 2 }, "new connections served certificate 2 after the files changed")
	n2 := ackedN()
	waitAcks(n2 + 50)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.PID() != pid {
		t.Fatal("the server restarted")
	}
	total := ackedN()
	if total < n2+50 {
		t.Fatalf("only %d records acknowledged (%d after the second rotation)", total, total-n2)
	}

	// Every acknowledged record is in the log.
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.kafka), kgo.DialTLSConfig(tcfg), kgo.ConsumeTopics("rot"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < total && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		pcancel()
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range acked {
		if !seen[v] {
			t.Fatalf("acknowledged record %s is not in the log (%d of %d read)", v, len(seen), len(acked))
		}
	}
	t.Logf("%d records acknowledged across two certificate rotations, all read back", len(acked))
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
