package mqtt

import "github.com/runnel/runnel/ingest/produce"

// hand gives one batch to the log through the shared produce path: with
// acks=all (Route.Acks) once every in-sync copy of the site holds it
// (log.AllAppender; log.ErrNotEnoughReplicas when too few are in sync),
// else as a local append.
func (a *appender) hand(data []byte, done func(int64, error)) {
	acks := produce.AcksLeader
	if a.tp.all {
		acks = produce.AcksAll
	}
	a.b.produce.AppendAsync(a.tp.topic, a.tp.partition, data, acks, done)
}
