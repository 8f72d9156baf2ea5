package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinGroup serves JoinGroup; it blocks until the rebalance completes.
func (c *Coordinator) joinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) kmsg.Response {
	c.stats.joins.Add(1)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	answer := func(o joinOutcome) kmsg.Response {
		resp.ErrorCode = o.code
		resp.Generation = o.generation
		resp.MemberID = o.memberID
		resp.LeaderID = o.leader
		resp.Members = o.members
		resp.SkipAssignment = o.skipAssignment
		if o.code == codeNone {
			pt, p := req.ProtocolType, o.protocol
			resp.ProtocolType, resp.Protocol = &pt, &p
		}
		return resp
	}
	fail := func(code int16) kmsg.Response {
		return answer(joinOutcome{code: code, generation: -1, memberID: req.MemberID})
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		return fail(codeInvalidGroupID)
	case session < c.opts.MinSessionTimeout || session > c.opts.MaxSessionTimeout:
		return fail(codeInvalidSessionTimeout)
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		return fail(codeInconsistentGroupProtocol)
	}
	ci := clientFrom(ctx)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(codeCoordinatorNotAvailable)
	}
	if c.cgroups[req.Group] != nil {
		// A consumer-protocol group with members (KIP-848).
		c.mu.Unlock()
		return fail(codeInconsistentGroupProtocol)
	}
	g := c.groupLocked(req.Group, req.MemberID == "")
	if g == nil {
		c.mu.Unlock()
		return fail(codeUnknownMemberID)
	}
	if !g.supports(req.MemberID, req.ProtocolType, req.Protocols) {
		c.maybeDropLocked(g)
		c.mu.Unlock()
		return fail(codeInconsistentGroupProtocol)
	}
	o, ch := c.joinLocked(g, req, ci)
	c.maybeDropLocked(g)
	c.mu.Unlock()
	if ch == nil {
		return answer(o)
	}
	return answer(c.waitJoin(ctx, ch))
}

// waitJoin waits for the answer on ch.
func (c *Coordinator) waitJoin(ctx context.Context, ch chan joinOutcome) joinOutcome {
	select {
	case o := <-ch:
		return o
	case <-ctx.Done():
	case <-c.closing:
	}
	// Stop waiting; a member no longer blocked is subject to its session.
	c.mu.Lock()
	for _, g := range c.groups {
		for _, m := range g.members {
			if m.joinCh == ch {
				m.joinCh = nil
				m.lastSeen = time.Now()
			}
		}
	}
	c.mu.Unlock()
	select {
	case o := <-ch:
		return o
	default:
	}
	return joinOutcome{code: codeCoordinatorNotAvailable, generation: -1}
}

// joinLocked is the JoinGroup state machine. It returns either an answer
// now (ch == nil) or the channel the answer will arrive on.
func (c *Coordinator) joinLocked(g *group, req *kmsg.JoinGroupRequest, ci clientInfo) (joinOutcome, chan joinOutcome) {
	failed := func(code int16) (joinOutcome, chan joinOutcome) {
		return joinOutcome{code: code, generation: -1, memberID: req.MemberID}, nil
	}
	if req.MemberID == "" {
		if req.InstanceID != nil {
			newID := newMemberID(*req.InstanceID)
			if oldID, ok := g.static[*req.InstanceID]; ok {
				return c.replaceStaticLocked(g, g.members[oldID], newID, req, ci)
			}
			m := c.addMemberLocked(g, newID, req, ci)
			return c.newMemberJoinLocked(g, m)
		}
		prefix := ci.id
		if prefix == "" {
			prefix = "member"
		}
		newID := newMemberID(prefix)
		if req.Version >= 4 {
			// KIP-394: the client must come back with this id.
			c.addPendingLocked(g, newID, time.Duration(req.SessionTimeoutMillis)*time.Millisecond)
			return joinOutcome{code: codeMemberIDRequired, generation: -1, memberID: newID}, nil
		}
		m := c.addMemberLocked(g, newID, req, ci)
		return c.newMemberJoinLocked(g, m)
	}

	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		m := c.addMemberLocked(g, req.MemberID, req, ci)
		return c.newMemberJoinLocked(g, m)
	}
	if req.InstanceID != nil {
		if id, ok := g.static[*req.InstanceID]; ok && id != req.MemberID {
			return failed(codeFencedInstanceID)
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		return failed(codeUnknownMemberID)
	}
	switch g.state {
	case statePreparing:
		m.update(req, ci)
		return c.awaitJoinLocked(g, m)
	case stateCompleting:
		if m.matches(req.Protocols) {
			// A retry of the JoinGroup whose answer was lost.
			m.lastSeen = time.Now()
			return g.currentOutcome(m, m.id == g.leader), nil
		}
		m.update(req, ci)
		c.prepareRebalanceLocked(g, "member "+m.id+" rejoined with new metadata")
		return c.awaitJoinLocked(g, m)
	case stateStable:
		if m.id != g.leader && m.matches(req.Protocols) {
			// Nothing changed: the member gets the current generation
			// and then its assignment from SyncGroup.
			m.lastSeen = time.Now()
			return g.currentOutcome(m, false), nil
		}
		m.update(req, ci)
		reason := "member " + m.id + " rejoined with new metadata"
		if m.id == g.leader {
			reason = "leader " + m.id + " rejoined"
		}
		c.prepareRebalanceLocked(g, reason)
		return c.awaitJoinLocked(g, m)
	}
	return failed(codeUnknownMemberID)
}

// newMemberJoinLocked starts (or joins) a rebalance for a member just added.
func (c *Coordinator) newMemberJoinLocked(g *group, m *member) (joinOutcome, chan joinOutcome) {
	if g.state != statePreparing {
		c.prepareRebalanceLocked(g, "member "+m.id+" joined")
	}
	return c.awaitJoinLocked(g, m)
}

// awaitJoinLocked marks m as rejoined and returns the channel its answer
// arrives on (maybe already, when m was the last one expected).
func (c *Coordinator) awaitJoinLocked(g *group, m *member) (joinOutcome, chan joinOutcome) {
	// A JoinGroup still waiting for m (its connection may be gone) is
	// superseded by this one.
	m.notifyJoin(joinOutcome{code: codeRebalanceInProgress, generation: -1, memberID: m.id})
	ch := make(chan joinOutcome, 1)
	m.joinCh = ch
	m.joined = true
	c.tryCompleteJoinLocked(g)
	return joinOutcome{}, ch
}

// replaceStaticLocked handles a static member rejoining without its member
// id (a restarted process): the old id is fenced and replaced by newID.
func (c *Coordinator) replaceStaticLocked(g *group, m *member, newID string, req *kmsg.JoinGroupRequest, ci clientInfo) (joinOutcome, chan joinOutcome) {
	oldID, oldLeader := m.id, g.leader
	m.notifyJoin(joinOutcome{code: codeFencedInstanceID, generation: -1, memberID: oldID})
	m.notifySync(syncOutcome{code: codeFencedInstanceID})
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	g.static[*m.instanceID] = newID
	if g.leader == oldID {
		g.leader = newID
	}
	m.update(req, ci)
	c.logger.Info("group: static member replaced", "group", g.name, "instance", *m.instanceID, "old", oldID, "member", newID)
	switch g.state {
	case stateStable:
		if g.selectProtocol() == g.protocol {
			// No rebalance: the member keeps its assignment. A
			// replaced leader must not assign (a stable group would
			// not relay it): v9+ tells it so (KIP-814: it still
			// gets the member list, to watch the group's topics);
			// older versions get the old leader id, which clients
			// recognise by its instance id prefix.
			isLeader := g.leader == newID
			if isLeader && req.Version >= 9 {
				o := g.currentOutcome(m, true)
				o.skipAssignment = true
				return o, nil
			}
			o := g.currentOutcome(m, false)
			o.leader = oldLeader
			return o, nil
		}
		c.prepareRebalanceLocked(g, "static member "+newID+" changed the group protocol")
	case stateCompleting:
		c.prepareRebalanceLocked(g, "static member "+newID+" replaced during assignment")
	}
	return c.awaitJoinLocked(g, m)
}

// lookupLocked finds the member a request names, or the error to answer.
func (c *Coordinator) lookupLocked(g *group, memberID string, instanceID *string) (*member, int16) {
	if g == nil {
		return nil, codeUnknownMemberID
	}
	if instanceID != nil {
		if id, ok := g.static[*instanceID]; ok && id != memberID {
			return nil, codeFencedInstanceID
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, codeUnknownMemberID
	}
	return m, codeNone
}

// syncGroup serves SyncGroup; a follower blocks until the leader's
// assignment arrives.
func (c *Coordinator) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	var protocolType, protocol string // of the generation synced
	answer := func(o syncOutcome) kmsg.Response {
		resp.ErrorCode = o.code
		resp.MemberAssignment = o.assignment
		if o.code == codeNone && req.Version >= 5 {
			resp.ProtocolType, resp.Protocol = &protocolType, &protocol
		}
		return resp
	}
	if req.Group == "" {
		return answer(syncOutcome{code: codeInvalidGroupID})
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return answer(syncOutcome{code: codeCoordinatorNotAvailable})
	}
	g := c.groups[req.Group]
	m, code := c.lookupLocked(g, req.MemberID, req.InstanceID)
	switch {
	case code != codeNone:
	case req.Generation != g.generation:
		code = codeIllegalGeneration
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		code = codeInconsistentGroupProtocol
	case g.state == statePreparing:
		code = codeRebalanceInProgress
	case g.state != stateCompleting && g.state != stateStable:
		code = codeUnknownMemberID
	}
	if code != codeNone {
		c.mu.Unlock()
		return answer(syncOutcome{code: code})
	}
	m.lastSeen = time.Now()
	protocolType, protocol = g.protocolType, g.protocol
	if g.state == stateStable {
		a := m.assignment
		c.mu.Unlock()
		return answer(syncOutcome{assignment: a})
	}
	// CompletingRebalance: the leader's assignments make the group
	// stable; a follower waits for them.
	m.synced = true
	if m.id == g.leader {
		c.completeSyncLocked(g, req.GroupAssignment)
		a := m.assignment
		c.mu.Unlock()
		return answer(syncOutcome{assignment: a})
	}
	m.notifySync(syncOutcome{code: codeRebalanceInProgress}) // superseded
	ch := make(chan syncOutcome, 1)
	m.syncCh = ch
	c.mu.Unlock()
	return answer(c.waitSync(ctx, ch))
}

// waitSync waits for the answer on ch.
func (c *Coordinator) waitSync(ctx context.Context, ch chan syncOutcome) syncOutcome {
	select {
	case o := <-ch:
		return o
	case <-ctx.Done():
	case <-c.closing:
	}
	c.mu.Lock()
	for _, g := range c.groups {
		for _, m := range g.members {
			if m.syncCh == ch {
				m.syncCh = nil
				m.lastSeen = time.Now()
			}
		}
	}
	c.mu.Unlock()
	select {
	case o := <-ch:
		return o
	default:
	}
	return syncOutcome{code: codeCoordinatorNotAvailable}
}

// heartbeat serves Heartbeat: it keeps the member's session alive and tells
// it when a rebalance is under way.
func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = codeInvalidGroupID
		return resp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		resp.ErrorCode = codeCoordinatorNotAvailable
		return resp
	}
	g := c.groups[req.Group]
	m, code := c.lookupLocked(g, req.MemberID, req.InstanceID)
	if code != codeNone {
		resp.ErrorCode = code
		return resp
	}
	if req.Generation != g.generation {
		resp.ErrorCode = codeIllegalGeneration
		return resp
	}
	m.lastSeen = time.Now()
	switch g.state {
	case statePreparing:
		resp.ErrorCode = codeRebalanceInProgress
	case stateCompleting, stateStable:
	default:
		resp.ErrorCode = codeUnknownMemberID
	}
	return resp
}

// leaveGroup serves LeaveGroup (v3+: a batch of members, by member id or
// instance id).
func (c *Coordinator) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = codeInvalidGroupID
		return resp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		resp.ErrorCode = codeCoordinatorNotAvailable
		return resp
	}
	g := c.groups[req.Group]
	if g == nil {
		resp.ErrorCode = codeUnknownMemberID
		return resp
	}
	left := 0
	leave := func(memberID string, instanceID *string) int16 {
		if instanceID != nil {
			id, ok := g.static[*instanceID]
			switch {
			case !ok:
				return codeUnknownMemberID
			case memberID != "" && memberID != id:
				return codeFencedInstanceID
			}
			memberID = id
		}
		if t, ok := g.pending[memberID]; ok {
			t.Stop()
			delete(g.pending, memberID)
			return codeNone
		}
		m := g.members[memberID]
		if m == nil {
			return codeUnknownMemberID
		}
		c.logger.Info("group: member left", "group", g.name, "member", memberID)
		c.removeMemberLocked(g, m, codeUnknownMemberID)
		left++
		return codeNone
	}
	if req.Version < 3 {
		resp.ErrorCode = leave(req.MemberID, nil)
	} else {
		for _, lm := range req.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
			rm.ErrorCode = leave(lm.MemberID, lm.InstanceID)
			resp.Members = append(resp.Members, rm)
		}
	}
	if left > 0 {
		c.membersChangedLocked(g, "members left")
	} else if g.state == statePreparing {
		c.tryCompleteJoinLocked(g) // a pending id may have been all it waited for
	}
	c.maybeDropLocked(g)
	return resp
}
