package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file holds the rebalance state machine. Every function here runs with
// c.mu held.

// groupLocked returns the group named name, creating it when create.
func (c *Coordinator) groupLocked(name string, create bool) *group {
	g := c.groups[name]
	if g == nil && create {
		g = newGroup(name)
		c.groups[name] = g
		c.stats.groups.Add(1)
	}
	return g
}

// maybeDropLocked forgets g when it has no members and no pending member
// ids: its committed offsets (in meta) are all that is left of it.
func (c *Coordinator) maybeDropLocked(g *group) {
	if len(g.members) > 0 || len(g.pending) > 0 || c.groups[g.name] != g {
		return
	}
	g.stopTimer()
	g.state = stateDead
	delete(c.groups, g.name)
	c.stats.groups.Add(-1)
}

// addMemberLocked adds a member from a JoinGroup request.
func (c *Coordinator) addMemberLocked(g *group, id string, req *kmsg.JoinGroupRequest, ci clientInfo) *member {
	c.seq++
	m := &member{
		id:         id,
		instanceID: clonePtr(req.InstanceID),
		order:      c.seq,
		lastSeen:   time.Now(),
	}
	m.update(req, ci)
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = id
	}
	c.stats.members.Add(1)
	m.timer = c.afterFunc(m.session, func() { c.checkSessionLocked(g, m) })
	if g.state == statePreparing && g.initialDelay {
		g.newMember = true
	}
	return m
}

// update takes the member's protocols and timeouts from a JoinGroup.
func (m *member) update(req *kmsg.JoinGroupRequest, ci clientInfo) {
	m.protocolType = req.ProtocolType
	m.protocols = copyProtocols(req.Protocols)
	m.session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalance = m.session
	if req.Version >= 1 && req.RebalanceTimeoutMillis > 0 {
		m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if ci.id != "" || ci.host != "" {
		m.clientID, m.clientHost = ci.id, ci.host
	}
	m.lastSeen = time.Now()
}

// removeMemberLocked takes m out of g, answering its waiting requests with
// code. The caller then calls membersChangedLocked (once for many removals).
func (c *Coordinator) removeMemberLocked(g *group, m *member, code int16) {
	if g.members[m.id] != m {
		return
	}
	m.timer.Stop()
	m.notifyJoin(joinOutcome{code: code, generation: -1, memberID: m.id})
	m.notifySync(syncOutcome{code: code})
	delete(g.members, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
	}
	c.stats.members.Add(-1)
}

// membersChangedLocked moves g on after members left: a stable group
// rebalances, a rebalancing one may now be complete, an empty one is
// forgotten.
func (c *Coordinator) membersChangedLocked(g *group, reason string) {
	switch g.state {
	case stateStable, stateCompleting:
		c.prepareRebalanceLocked(g, reason)
		c.tryCompleteJoinLocked(g)
	case statePreparing:
		c.tryCompleteJoinLocked(g)
	case stateEmpty:
		c.maybeDropLocked(g)
	}
}

// checkSessionLocked is m's session timer: it expires m when no request of
// m arrived for its session timeout, unless m waits in JoinGroup or
// SyncGroup.
func (c *Coordinator) checkSessionLocked(g *group, m *member) {
	if c.groups[g.name] != g || g.members[m.id] != m {
		return
	}
	if m.joinCh != nil || m.syncCh != nil {
		m.timer.Reset(m.session)
		return
	}
	if left := m.session - time.Since(m.lastSeen); left > 0 {
		m.timer.Reset(left)
		return
	}
	c.logger.Info("group: member session expired", "group", g.name, "member", m.id, "session", m.session)
	c.stats.expired.Add(1)
	c.removeMemberLocked(g, m, codeUnknownMemberID)
	c.membersChangedLocked(g, "member "+m.id+" session expired")
}

// addPendingLocked records a member id handed out with MEMBER_ID_REQUIRED;
// it is forgotten when no JoinGroup uses it within session.
func (c *Coordinator) addPendingLocked(g *group, id string, session time.Duration) {
	g.pending[id] = c.afterFunc(session, func() {
		if _, ok := g.pending[id]; !ok || c.groups[g.name] != g {
			return
		}
		delete(g.pending, id)
		if g.state == statePreparing {
			c.tryCompleteJoinLocked(g)
		}
		c.maybeDropLocked(g)
	})
}

// armLocked (re)arms g's phase timer; a fire after a later re-arm or stop
// does nothing.
func (c *Coordinator) armLocked(g *group, d time.Duration, fn func()) {
	g.stopTimer()
	epoch := g.timerEpoch
	g.timer = c.afterFunc(d, func() {
		if g.timerEpoch != epoch || c.groups[g.name] != g {
			return
		}
		g.timer = nil
		fn()
	})
}

// prepareRebalanceLocked starts a rebalance: every member must rejoin.
func (c *Coordinator) prepareRebalanceLocked(g *group, reason string) {
	if g.state == stateCompleting {
		for _, m := range g.members {
			m.notifySync(syncOutcome{code: codeRebalanceInProgress})
		}
	}
	wasEmpty := g.state == stateEmpty
	g.state = statePreparing
	for _, m := range g.members {
		m.joined = m.joinCh != nil
		m.synced = false
	}
	timeout := g.maxRebalance()
	c.logger.Info("group: preparing rebalance", "group", g.name, "generation", g.generation, "members", len(g.members), "reason", reason)
	if wasEmpty && c.opts.InitialRebalanceDelay > 0 {
		d := min(c.opts.InitialRebalanceDelay, timeout)
		g.initialDelay, g.newMember, g.delayLeft = true, false, timeout-d
		c.armLocked(g, d, func() { c.initialDelayDoneLocked(g) })
		return
	}
	g.initialDelay = false
	c.armLocked(g, timeout, func() {
		if g.state == statePreparing {
			c.completeJoinLocked(g)
		}
	})
}

// initialDelayDoneLocked ends or extends the first rebalance's wait for
// more members (Kafka's InitialDelayedJoin).
func (c *Coordinator) initialDelayDoneLocked(g *group) {
	if g.state != statePreparing {
		return
	}
	if g.newMember && g.delayLeft > 0 {
		d := min(c.opts.InitialRebalanceDelay, g.delayLeft)
		g.newMember, g.delayLeft = false, g.delayLeft-d
		c.armLocked(g, d, func() { c.initialDelayDoneLocked(g) })
		return
	}
	g.initialDelay = false
	c.completeJoinLocked(g)
}

// tryCompleteJoinLocked completes the join phase once every member has
// rejoined and no handed-out member id is still expected.
func (c *Coordinator) tryCompleteJoinLocked(g *group) {
	if g.state != statePreparing || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if !m.joined {
			return
		}
	}
	c.completeJoinLocked(g)
}

// completeJoinLocked ends the join phase: dynamic members that did not
// rejoin are dropped, the generation advances, a leader and a protocol are
// chosen and every waiting JoinGroup is answered.
func (c *Coordinator) completeJoinLocked(g *group) {
	g.stopTimer()
	g.initialDelay = false
	for _, m := range g.members {
		if !m.joined && m.instanceID == nil {
			c.logger.Info("group: member did not rejoin in time", "group", g.name, "member", m.id)
			c.stats.expired.Add(1)
			c.removeMemberLocked(g, m, codeUnknownMemberID)
		}
	}
	if len(g.members) == 0 {
		g.generation++
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		c.maybeDropLocked(g)
		return
	}
	// Keep the leader if it is waiting for this answer; else the first
	// member (in join order) that waits; else the first that joined.
	ms := g.sortedMembers()
	if l := g.members[g.leader]; l == nil || l.joinCh == nil {
		g.leader = ""
		for _, m := range ms {
			if m.joinCh != nil {
				g.leader = m.id
				break
			}
		}
		if g.leader == "" {
			g.leader = ms[0].id
		}
	}
	g.generation++
	g.protocol = g.selectProtocol()
	g.state = stateCompleting
	c.stats.rebalances.Add(1)
	now := time.Now()
	for _, m := range ms {
		m.joined, m.synced, m.assignment = false, false, nil
		if m.joinCh != nil {
			m.lastSeen = now
			m.notifyJoin(g.currentOutcome(m, m.id == g.leader))
		}
	}
	c.logger.Info("group: rebalance complete, awaiting assignment", "group", g.name, "generation", g.generation,
		"protocol", g.protocol, "leader", g.leader, "members", len(g.members))
	c.armLocked(g, g.maxRebalance(), func() { c.syncTimeoutLocked(g) })
}

// syncTimeoutLocked drops members that did not SyncGroup within the
// rebalance timeout after the join completed, and rebalances.
func (c *Coordinator) syncTimeoutLocked(g *group) {
	if g.state != stateCompleting {
		return
	}
	for _, m := range g.members {
		if !m.synced {
			c.logger.Info("group: member did not sync in time", "group", g.name, "member", m.id)
			c.stats.expired.Add(1)
			c.removeMemberLocked(g, m, codeUnknownMemberID)
		}
	}
	c.membersChangedLocked(g, "members did not sync in time")
}

// completeSyncLocked stores the leader's assignments and answers every
// waiting SyncGroup: the group is stable.
func (c *Coordinator) completeSyncLocked(g *group, assignments []kmsg.SyncGroupRequestGroupAssignment) {
	byID := make(map[string][]byte, len(assignments))
	for _, a := range assignments {
		byID[a.MemberID] = a.MemberAssignment
	}
	g.stopTimer()
	g.state = stateStable
	for _, m := range g.members {
		m.assignment = append([]byte{}, byID[m.id]...)
		m.notifySync(syncOutcome{assignment: m.assignment})
	}
	c.logger.Info("group: stable", "group", g.name, "generation", g.generation, "members", len(g.members))
}
