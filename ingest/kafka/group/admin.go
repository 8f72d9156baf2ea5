package group

import (
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupSummary is what ListGroups and DescribeGroups report of one group.
type groupSummary struct {
	name         string
	state        state
	consumer     bool   // a consumer-protocol (KIP-848) group
	cstate       string // its state, as Kafka names consumer group states
	protocolType string
	protocol     string
	members      []kmsg.DescribeGroupsResponseGroupMember
}

// summaryLocked describes an in-memory group. Member metadata and
// assignments are shown only when the group is stable, as Kafka does.
func summaryLocked(g *group) groupSummary {
	s := groupSummary{name: g.name, state: g.state, protocolType: g.protocolType}
	stable := g.state == stateStable
	if stable {
		s.protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID = m.id, clonePtr(m.instanceID)
		dm.ClientID, dm.ClientHost = m.clientID, m.clientHost
		if stable {
			dm.ProtocolMetadata = m.metadata(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		s.members = append(s.members, dm)
	}
	return s
}

// offsetOnly describes a group known only by its committed offsets.
func offsetOnly(name string) groupSummary {
	return groupSummary{name: name, state: stateEmpty, protocolType: "consumer"}
}

// listGroups serves ListGroups: groups with members, and groups with
// committed offsets (state Empty).
func (c *Coordinator) listGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	stored, err := c.opts.Meta.Groups()
	if err != nil {
		c.logger.Error("group: cannot list stored groups", "err", err)
		resp.ErrorCode = codeCoordinatorNotAvailable
		return resp
	}
	var all []groupSummary
	c.mu.Lock()
	for _, g := range c.groups {
		all = append(all, groupSummary{name: g.name, state: g.state, protocolType: g.protocolType})
	}
	for _, g := range c.cgroups {
		all = append(all, groupSummary{name: g.name, consumer: true, cstate: g.state(), protocolType: "consumer"})
	}
	for _, name := range stored {
		if c.groups[name] == nil && c.cgroups[name] == nil {
			all = append(all, offsetOnly(name))
		}
	}
	c.mu.Unlock()
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })

	wantState := func(s string) bool {
		if len(req.StatesFilter) == 0 {
			return true
		}
		return slices.ContainsFunc(req.StatesFilter, func(f string) bool { return strings.EqualFold(f, s) })
	}
	wantType := func(t string) bool {
		return len(req.TypesFilter) == 0 ||
			slices.ContainsFunc(req.TypesFilter, func(f string) bool { return strings.EqualFold(f, t) })
	}
	for _, s := range all {
		st, typ := s.state.String(), "classic"
		if s.consumer {
			st, typ = s.cstate, "consumer"
		}
		if !wantState(st) || !wantType(typ) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType = s.name, s.protocolType
		lg.GroupState, lg.GroupType = st, typ
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

// describeGroups serves DescribeGroups.
func (c *Coordinator) describeGroups(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = name
		c.mu.Lock()
		g := c.groups[name]
		var s groupSummary
		if g != nil {
			s = summaryLocked(g)
		} else if cg := c.cgroups[name]; cg != nil {
			s = consumerSummaryLocked(cg)
		}
		c.mu.Unlock()
		if s.consumer {
			dg.State, dg.ProtocolType, dg.Protocol = s.cstate, s.protocolType, s.protocol
			dg.Members = s.members
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		if g == nil {
			offs, err := c.opts.Meta.GroupOffsets(name)
			switch {
			case err != nil:
				dg.ErrorCode = codeCoordinatorNotAvailable
			case len(offs) > 0:
				s = offsetOnly(name)
			case req.Version >= 6:
				dg.ErrorCode = codeGroupIDNotFound
				msg := "group " + name + " not found"
				dg.ErrorMessage = &msg
			default:
				s = groupSummary{name: name, state: stateDead}
			}
		}
		if dg.ErrorCode == codeNone {
			dg.State, dg.ProtocolType, dg.Protocol = s.state.String(), s.protocolType, s.protocol
			dg.Members = s.members
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// deleteGroups serves DeleteGroups: only groups without members may be
// deleted; their committed offsets are removed.
func (c *Coordinator) deleteGroups(req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = name
		dg.ErrorCode = c.deleteGroup(name)
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(name string) int16 {
	c.mu.Lock()
	if cg := c.cgroups[name]; cg != nil && len(cg.members) > 0 {
		c.mu.Unlock()
		return codeNonEmptyGroup
	}
	if g := c.groups[name]; g != nil {
		if len(g.members) > 0 {
			c.mu.Unlock()
			return codeNonEmptyGroup
		}
		for id, t := range g.pending {
			t.Stop()
			delete(g.pending, id)
		}
		c.maybeDropLocked(g)
	}
	c.mu.Unlock()
	offs, err := c.opts.Meta.GroupOffsets(name)
	if err != nil {
		return codeCoordinatorNotAvailable
	}
	if len(offs) == 0 {
		return codeGroupIDNotFound
	}
	if err := c.opts.Meta.DeleteGroup(name); err != nil {
		c.logger.Error("group: cannot delete group offsets", "group", name, "err", err)
		return codeCoordinatorNotAvailable
	}
	c.logger.Info("group: deleted", "group", name)
	return codeNone
}
