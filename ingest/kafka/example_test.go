package kafka_test

import (
	"log/slog"
	"net"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/log"
)

// Example wires a log and a Kafka listener, as cmd/runnel does (groups
// would come from ingest/kafka/group.New).
func Example() {
	l, err := log.Open(&log.Options{Dir: "runnel-data"})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	srv, err := kafka.New(kafka.Options{
		Log:              l,
		Logger:           slog.Default(),
		AutoCreateTopics: true,
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", ":9092")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	// ... on SIGTERM:
	srv.Close() // finishes in-flight requests, then the log is closed
}
