package kafka

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/log"
)

// TestJavaACLsAndScramOverTLS: Apache Kafka's own tools against a server
// with SCRAM-SHA-512 over TLS and access rules (admin a superuser, bob
// nothing): bob's console producer is refused (TOPIC_AUTHORIZATION_FAILED);
// kafka-acls --add as admin grants him write on the topic, --list shows
// the binding, bob's console producer then writes and admin's console
// consumer reads it; the ACL is in meta.db (a new server on the same log
// has it); kafka-acls --remove takes it away again.
func TestJavaACLsAndScramOverTLS(t *testing.T) {
	java, cp := javaClasspath(t)
	dir := t.TempDir()
	cert, _ := selfSigned(t)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	var entries []users.Entry
	for _, u := range [][2]string{{"admin", "admin-pw"}, {"bob", "bob-pw"}} {
		e, err := users.NewEntry(u[0], u[1])
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	st, err := users.NewStore(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := func() *access.Policy {
		p, err := access.NewPolicy(nil, []string{"admin"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	lg := openLog(t, "")
	if err := lg.CreateTopic("plant", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, lg, func(o *Options) {
		o.Users, o.Access = st, policy()
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	props := func(user, pass string) string {
		p := filepath.Join(dir, user+".properties")
		os.WriteFile(p, []byte(strings.Join([]string{
			"security.protocol=SASL_SSL",
			"sasl.mechanism=SCRAM-SHA-512",
			`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="` + user + `" password="` + pass + `";`,
			"ssl.truststore.type=PEM",
			"ssl.truststore.location=" + caFile,
		}, "\n")+"\n"), 0o600)
		return p
	}
	adminProps, bobProps := props("admin", "admin-pw"), props("bob", "bob-pw")
	produce := func(p, line string) (string, error) {
		return runJavaErr(t, java, cp, line+"\n", 60*time.Second, "org.apache.kafka.tools.ConsoleProducer",
			"--bootstrap-server", ts.addr, "--topic", "plant", "--producer.config", p,
			"--producer-property", "delivery.timeout.ms=10000", "--producer-property", "request.timeout.ms=5000", "--producer-property", "max.block.ms=10000")
	}
	acls := func(args ...string) string {
		return runJava(t, java, cp, "", 60*time.Second,
			append([]string{"org.apache.kafka.tools.AclCommand", "--bootstrap-server", ts.addr, "--command-config", adminProps}, args...)...)
	}

	end := func() int64 {
		info, err := lg.Topic("plant")
		if err != nil {
			t.Fatal(err)
		}
		return info.Partitions[0].HWM
	}
	// The console producer logs its errors through SLF4J, which has no
	// binding here: what counts is that nothing was stored.
	produce(bobProps, "refused")
	if n := end(); n != 0 {
		t.Fatalf("bob produced without an ACL: log end %d", n)
	}
	acls("--add", "--allow-principal", "User:bob", "--operation", "Write", "--operation", "Describe", "--topic", "plant")
	if out := acls("--list", "--topic", "plant"); !strings.Contains(out, "User:bob") || !strings.Contains(out, "WRITE") {
		t.Fatalf("kafka-acls --list: %q", out)
	}
	if out, err := produce(bobProps, "from-bob"); err != nil || end() != 1 {
		t.Fatalf("bob with an ACL: %v, log end %d: %s", err, end(), out)
	}
	out := runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", ts.addr, "--topic", "plant", "--partition", "0", "--offset", "earliest", "--timeout-ms", "5000",
		"--consumer.config", adminProps)
	if !strings.Contains(out, "from-bob") || strings.Contains(out, "refused") {
		t.Fatalf("admin's console consumer read %q", out)
	}
	// Stored: a new server on the same log has the ACL.
	ts2 := startServer(t, lg, func(o *Options) { o.Users, o.Access = st, policy() })
	if !ts2.opts.Access.Allowed("bob", access.Topic, "plant", access.Write) || ts2.opts.Access.Allowed("bob", access.Topic, "other", access.Write) {
		t.Fatalf("stored ACLs: %+v", ts2.opts.Access.Dynamic())
	}
	acls("--remove", "--force", "--allow-principal", "User:bob", "--operation", "Write", "--operation", "Describe", "--topic", "plant")
	if out := acls("--list", "--topic", "plant"); strings.Contains(out, "User:bob") {
		t.Fatalf("kafka-acls --list after --remove: %q", out)
	}
	produce(bobProps, "refused-again")
	if n := end(); n != 1 {
		t.Fatalf("bob produced after the ACL was removed: log end %d", n)
	}
}

func runJavaErr(t *testing.T, java, cp, stdin string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, append([]string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", cp}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
