package kafka

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/log"
)

// rdkafkaTxnScript runs librdkafka's transactional producer (through
// confluent-kafka for Python): init_transactions, a committed and an
// aborted transaction, then a read_committed consumer that must see the
// committed records only.
const rdkafkaTxnScript = `
import sys
from confluent_kafka import Producer, Consumer, TopicPartition
addr, topic = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": addr, "transactional.id": "rdkafka-txn"})
p.init_transactions(10)
p.begin_transaction()
for i in range(10):
    p.produce(topic, value=b"commit-%d" % i, partition=0)
p.commit_transaction(10)
p.begin_transaction()
for i in range(5):
    p.produce(topic, value=b"abort-%d" % i, partition=0)
p.flush(10)
p.abort_transaction(10)
c = Consumer({"bootstrap.servers": addr, "group.id": "rdkafka-rc", "isolation.level": "read_committed",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
got, idle = [], 0
while idle < 3:
    m = c.poll(1.0)
    if m is None:
        idle += 1
        continue
    if m.error():
        print("ERROR", m.error()); sys.exit(1)
    got.append(m.value().decode())
c.close()
print("GOT", ",".join(got))
`

// TestRdkafkaTransactions: librdkafka's init_transactions answers at
// once (it timed out when transactions were unsupported), and its
// transactions commit and abort as in Kafka.
func TestRdkafkaTransactions(t *testing.T) {
	reexec.SkipNativeChildIfEmulated(t, "python3")
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import confluent_kafka").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with confluent-kafka needed (pip install confluent-kafka): %v", err)
		}
		t.Skipf("python3 with confluent-kafka not available: %v", err)
	}
	ts := startServer(t, openLog(t, ""), nil)
	if err := ts.log.CreateTopic("rdtx", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", rdkafkaTxnScript, ts.addr, "rdtx").CombinedOutput()
	if err != nil {
		t.Fatalf("librdkafka transactions: %v\n%s", err, out)
	}
	want := "GOT commit-0,commit-1,commit-2,commit-3,commit-4,commit-5,commit-6,commit-7,commit-8,commit-9"
	if !strings.Contains(string(out), want+"\n") {
		t.Fatalf("read_committed with librdkafka:\n%s\nwant %s", out, want)
	}
}
