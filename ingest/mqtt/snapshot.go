package mqtt

import (
	"sort"
	"unicode/utf8"
)

// Snapshot is what the broker holds now, for status pages: connected
// clients with their subscriptions, and retained messages. Lists are
// capped at the limit given to Broker.Snapshot (Truncated says so).
type Snapshot struct {
	Clients   []ClientInfo   `json:"clients"`
	Retained  []RetainedInfo `json:"retained"`
	Truncated bool           `json:"truncated"`
}

// ClientInfo is one client session.
type ClientInfo struct {
	ID            string    `json:"id"`
	Remote        string    `json:"remote"`
	User          string    `json:"user,omitempty"`
	Protocol      byte      `json:"protocol"`
	Connected     bool      `json:"connected"`
	Subscriptions []SubInfo `json:"subscriptions"`
}

// SubInfo is one subscription.
type SubInfo struct {
	Filter string `json:"filter"`
	QoS    byte   `json:"qos"`
}

// RetainedInfo is one retained message; Payload is its start (at most 256
// bytes, as text when UTF-8).
type RetainedInfo struct {
	Topic   string `json:"topic"`
	Size    int    `json:"size"`
	Payload string `json:"payload"`
}

// Snapshot lists at most limit clients (inline ones excluded) and limit
// retained messages, sorted.
func (b *Broker) Snapshot(limit int) Snapshot {
	s := Snapshot{Clients: []ClientInfo{}, Retained: []RetainedInfo{}}
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		ci := ClientInfo{ID: cl.ID, Remote: cl.Net.Remote, User: string(cl.Properties.Username),
			Protocol: cl.Properties.ProtocolVersion, Connected: !cl.Closed(), Subscriptions: []SubInfo{}}
		for _, sub := range cl.State.Subscriptions.GetAll() {
			ci.Subscriptions = append(ci.Subscriptions, SubInfo{Filter: sub.Filter, QoS: sub.Qos})
		}
		subs := ci.Subscriptions
		sort.Slice(subs, func(i, j int) bool { return subs[i].Filter < subs[j].Filter })
		s.Clients = append(s.Clients, ci)
	}
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(s.Clients, func(i, j int) bool { return s.Clients[i].ID < s.Clients[j].ID })
	if len(s.Clients) > limit {
		s.Clients, s.Truncated = s.Clients[:limit], true
	}
	for topic, pk := range b.server.Topics.Retained.GetAll() {
		p := pk.Payload
		if len(p) > 256 {
			p = p[:256]
		}
		txt := string(p)
		if !utf8.Valid(p) {
			txt = ""
		}
		s.Retained = append(s.Retained, RetainedInfo{Topic: topic, Size: len(pk.Payload), Payload: txt})
	}
	sort.Slice(s.Retained, func(i, j int) bool { return s.Retained[i].Topic < s.Retained[j].Topic })
	if len(s.Retained) > limit {
		s.Retained, s.Truncated = s.Retained[:limit], true
	}
	return s
}
