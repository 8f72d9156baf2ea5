package mqtt

import "github.com/runnel/runnel/log"

// hand gives one batch to the log: with acks=all (Route.Acks) through
// log.AllAppender when the log has it (site replication: done once every
// in-sync copy holds the batch, or log.ErrNotEnoughReplicas), else as a
// local append.
func (a *appender) hand(data []byte, done func(int64, error)) {
	if a.tp.all {
		if all, ok := a.b.opts.Log.(log.AllAppender); ok {
			all.AppendAsyncAll(a.tp.topic, a.tp.partition, data, done)
			return
		}
	}
	a.b.opts.Log.AppendAsync(a.tp.topic, a.tp.partition, data, done)
}
