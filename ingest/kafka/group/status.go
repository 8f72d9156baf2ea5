package group

import (
	"sort"
)

// GroupStatus describes one consumer group for status pages.
type GroupStatus struct {
	Name     string         `json:"name"`
	State    string         `json:"state"`
	Protocol string         `json:"protocol,omitempty"`
	Members  []MemberStatus `json:"members"`
	// Offsets are the group's committed offsets.
	Offsets []CommittedOffset `json:"offsets"`
}

// MemberStatus is one member of a group.
type MemberStatus struct {
	ID         string `json:"id"`
	ClientID   string `json:"client_id"`
	ClientHost string `json:"client_host"`
}

// CommittedOffset is a group's committed offset of one partition.
type CommittedOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Groups lists every group with members or committed offsets, sorted by
// name, with its members and committed offsets; consumer-protocol groups
// (KIP-848) show their assignor as Protocol.
func (c *Coordinator) Groups() ([]GroupStatus, error) {
	stored, err := c.opts.Meta.Groups()
	if err != nil {
		return nil, err
	}
	byName := map[string]*GroupStatus{}
	c.mu.Lock()
	for _, g := range c.groups {
		gs := &GroupStatus{Name: g.name, State: g.state.String(), Protocol: g.protocol, Members: []MemberStatus{}}
		for _, m := range g.members {
			gs.Members = append(gs.Members, MemberStatus{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost})
		}
		// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
		ms := gs.Members
		sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
		byName[g.name] = gs
	}
	for _, g := range c.cgroups { // consumer protocol (KIP-848)
		gs := &GroupStatus{Name: g.name, State: g.state(), Protocol: g.assignor, Members: []MemberStatus{}}
		for _, m := range g.sortedMembers() {
			gs.Members = append(gs.Members, MemberStatus{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost})
		}
		byName[g.name] = gs
	}
	c.mu.Unlock()
	for _, name := range stored {
		if byName[name] == nil {
			byName[name] = &GroupStatus{Name: name, State: stateEmpty.String(), Members: []MemberStatus{}}
		}
	}
	out := make([]GroupStatus, 0, len(byName))
	for _, gs := range byName {
		offs, err := c.opts.Meta.GroupOffsets(gs.Name)
		if err != nil {
			return nil, err
		}
		gs.Offsets = []CommittedOffset{}
		for tp, o := range offs {
			gs.Offsets = append(gs.Offsets, CommittedOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset})
		}
		co := gs.Offsets
		sort.Slice(co, func(i, j int) bool {
			if co[i].Topic != co[j].Topic {
				return co[i].Topic < co[j].Topic
			}
			return co[i].Partition < co[j].Partition
		})
		out = append(out, *gs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
