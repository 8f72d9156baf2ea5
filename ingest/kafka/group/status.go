package group

import (
	"slices"
	"strings"
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
// name, with its members and committed offsets.
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
		slices.SortFunc(gs.Members, func(a, b MemberStatus) int { return strings.Compare(a.ID, b.ID) })
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
		slices.SortFunc(gs.Offsets, func(a, b CommittedOffset) int {
			if c := strings.Compare(a.Topic, b.Topic); c != 0 {
				return c
			}
			return int(a.Partition - b.Partition)
		})
		out = append(out, *gs)
	}
	slices.SortFunc(out, func(a, b GroupStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
