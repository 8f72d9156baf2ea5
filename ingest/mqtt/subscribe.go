package mqtt

import (
	"slices"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Subscription caps (Options.MaxSubscriptionsPerClient, MaxSubscriptions),
// through mochi's hooks: OnSubscribe blanks each filter that would take a
// client or the broker past its cap (an empty filter is invalid, so mochi
// refuses it, with 0x80 for MQTT 3.1.1, which has no other failure code),
// and OnPacketEncode turns the refusals of that SUBACK into 0x97 (quota
// exceeded) for MQTT 5. A filter the client already holds is a
// resubscription and never refused.

// quotaMark is a SUBSCRIBE with refused filters, until its SUBACK is
// encoded (mochi writes it from the same goroutine, right after
// OnSubscribe).
type quotaMark struct {
	id  uint16
	idx []int
}

// maxFilterLevels is the most levels a subscription filter may have: the
// topic index's cost grows with the square of a filter's depth (one
// SUBSCRIBE of 14 filters of 32,768 levels kept a core busy for minutes
// and 1,000 of 2,000 levels took 1.3 GB). A deeper filter is refused as
// invalid (0x8F; 0x80 in MQTT 3.1.1). Topics in practice have a handful
// of levels.
const maxFilterLevels = 64

// OnSubscribe refuses filters deeper than maxFilterLevels and applies the
// subscription caps.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	b := h.b
	if !cl.Net.Inline {
		pk = b.refuseDeepFilters(cl, pk)
	}
	perClient, total := b.opts.MaxSubscriptionsPerClient, b.opts.MaxSubscriptions
	if cl.Net.Inline || perClient < 0 && total < 0 {
		return pk
	}
	have := int64(cl.State.Subscriptions.Len())
	all := atomic.LoadInt64(&b.server.Info.Subscriptions)
	var over []int
	seen := make(map[string]bool, len(pk.Filters))
	for i, f := range pk.Filters {
		if f.Filter == "" {
			continue // refused already (refuseDeepFilters)
		}
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok || seen[f.Filter] {
			continue // a resubscription takes no new entry
		}
		seen[f.Filter] = true
		if perClient >= 0 && have >= int64(perClient) || total >= 0 && all >= int64(total) {
			over = append(over, i)
			continue
		}
		have++
		all++
	}
	if len(over) == 0 {
		return pk
	}
	n := b.stats.subsRefused.Add(uint64(len(over)))
	if b.warnLimit() {
		b.log.Warn("mqtt: subscriptions refused: quota exceeded (logged at most once a second)", "client", cl.ID,
			"refused", len(over), "client_subscriptions", cl.State.Subscriptions.Len(), "max_per_client", perClient,
			"subscriptions", atomic.LoadInt64(&b.server.Info.Subscriptions), "max", total, "refused_total", n)
	}
	filters := slices.Clone(pk.Filters)
	for _, i := range over {
		filters[i].Filter = ""
	}
	pk.Filters = filters
	if cl.Properties.ProtocolVersion >= 5 {
		b.subQuota.Store(cl, quotaMark{id: pk.PacketID, idx: over})
	}
	return pk
}

// refuseDeepFilters blanks the filters of pk deeper than maxFilterLevels
// (mochi then refuses them as invalid).
func (b *Broker) refuseDeepFilters(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	var deep []int
	for i, f := range pk.Filters {
		if strings.Count(f.Filter, "/") >= maxFilterLevels {
			deep = append(deep, i)
		}
	}
	if len(deep) == 0 {
		return pk
	}
	n := b.stats.subsRefused.Add(uint64(len(deep)))
	if b.warnLimit() {
		b.log.Warn("mqtt: subscriptions refused: filter deeper than the most levels allowed (logged at most once a second)",
			"client", cl.ID, "refused", len(deep), "max_levels", maxFilterLevels, "refused_total", n)
	}
	filters := slices.Clone(pk.Filters)
	for _, i := range deep {
		filters[i].Filter = ""
	}
	pk.Filters = filters
	return pk
}

// OnPacketEncode answers refused subscriptions with 0x97 (MQTT 5).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Suback {
		return pk
	}
	v, ok := h.b.subQuota.Load(cl)
	if !ok || v.(quotaMark).id != pk.PacketID {
		return pk
	}
	h.b.subQuota.Delete(cl)
	codes := slices.Clone(pk.ReasonCodes)
	for _, i := range v.(quotaMark).idx {
		if i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			codes[i] = packets.ErrQuotaExceeded.Code
		}
	}
	pk.ReasonCodes = codes
	pk.Properties.ReasonString = "subscription quota exceeded"
	return pk
}
