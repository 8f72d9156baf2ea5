package mqtt

import (
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/runnel/runnel/ingest/access"
)

// logAccess applies Options.Access (the log topics' permission model) to
// a publish (write) or to a subscription or delivery (read) of mqttTopic.
// A subscription filter with wildcards is not checked here: each delivery
// it brings is.
func (b *Broker) logAccess(user, client, mqttTopic string, write bool) bool {
	p := b.opts.Access
	if p == nil {
		return true
	}
	principal := user
	if principal == "" {
		principal = access.Anonymous
	}
	if !write && strings.ContainsAny(mqttTopic, "+#") {
		return true
	}
	op := access.Read
	if write {
		op = access.Write
	}
	if t, ok := b.router.resolve(mqttTopic, client); ok && !p.Allowed(principal, access.Topic, t.topic, op) {
		return false
	}
	if !write {
		for i := range b.opts.Publish {
			r := &b.opts.Publish[i]
			if strings.HasPrefix(mqttTopic, r.Prefix) && !p.Allowed(principal, access.Topic, r.Topic, access.Read) {
				return false
			}
		}
	}
	return true
}

// MayPublish reports whether principal may publish to mqttTopic as client
// under Options.Access (the HTTP publish API's check; mqtt.acl is for
// MQTT clients).
func (b *Broker) MayPublish(principal, mqttTopic, client string) bool {
	return b.logAccess(principal, client, mqttTopic, true)
}

// throttle holds the client's reader (OnPublish runs on it) when its
// user is over Options.Quotas' rate.
func (b *Broker) throttle(cl *mqtt.Client, n int) {
	if b.opts.Quotas == nil {
		return
	}
	user := string(cl.Properties.Username)
	if cu := b.certUser(cl); cu != "" {
		user = cu
	}
	if user == "" {
		user = access.Anonymous
	}
	d := b.opts.Quotas.Charge(user, n)
	if d <= 0 {
		return
	}
	b.stats.quotaThrottled.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.closing:
	}
}
