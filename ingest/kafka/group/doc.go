// Package group is runnel's Kafka consumer-group coordinator: the classic
// group protocol behind JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the
// consumer group protocol of KIP-848 behind ConsumerGroupHeartbeat and
// ConsumerGroupDescribe, and for both OffsetCommit, OffsetFetch,
// ListGroups, DescribeGroups, DeleteGroups and OffsetDelete. ingest/kafka's
// server hands it decoded kmsg requests through its GroupHandler interface
// (Versions, Handle).
//
// # Basics
//
// Assignment is client-side: the coordinator picks a leader and a protocol
// (the first of the leader's protocols that every member supports), gives
// the leader every member's metadata in its JoinGroup response and relays
// the leader's SyncGroup assignments to the others. Assignors (range,
// round-robin, sticky, cooperative-sticky) therefore need nothing here;
// cooperative rebalancing is a series of ordinary rebalances in which
// members rejoin with changed metadata.
//
// Each group moves through Kafka's states:
//
//	          first JoinGroup
//	Empty ───────────────────────▶ PreparingRebalance ◀─────────────┐
//	  ▲   (waits InitialRebalance-   │  every member rejoined,       │ join/leave/
//	  │    Delay for more members)   │  or rebalance timeout         │ expiry/leader
//	  │                              ▼                               │ rejoin/new
//	  │ last member gone      CompletingRebalance ──────────────────┤ metadata
//	  │                              │  leader's SyncGroup           │
//	  │                              ▼                               │
//	  └────────────────────────── Stable ───────────────────────────┘
//
// JoinGroup blocks until the rebalance completes (or the request's context
// ends); SyncGroup of a follower blocks until the leader's SyncGroup.
// Members are expired when no request of theirs arrives for their session
// timeout (a member blocked in JoinGroup or SyncGroup is alive); members
// that do not rejoin within the rebalance timeout are dropped (static
// members stay until their session expires), and so are members that do not
// SyncGroup within it after the join completed.
//
// JoinGroup v4+ without a member id gets MEMBER_ID_REQUIRED and a fresh id
// (KIP-394); the id is held for one session timeout. A static member
// (group.instance.id, KIP-345) that rejoins without its member id replaces
// its old id; the old id is fenced (FENCED_INSTANCE_ID), and a stable group
// is not rebalanced unless the chosen protocol would change.
//
// Committed offsets live in log/meta (bucket "groups") and survive restarts;
// group membership lives in memory only, as each client rejoins after a
// restart. A group with no members is dropped from memory and is then known
// (ListGroups, DescribeGroups, DeleteGroups) by its committed offsets.
// OffsetCommit with generation -1 and no member id (simple consumers, kcat
// -o stored offsets, admin tools) is accepted for groups with no members.
// As in Kafka, the empty group id is valid for OffsetCommit, OffsetFetch,
// DescribeGroups and DeleteGroups (old offset-storing clients), never for
// membership.
//
// # The consumer group protocol (KIP-848)
//
// consumer.go, consumer_assign.go. A group is classic or consumer while it
// has members: a ConsumerGroupHeartbeat to a classic group with members
// gets GROUP_ID_NOT_FOUND, a JoinGroup to a consumer group with members
// INCONSISTENT_GROUP_PROTOCOL (Kafka's answers without group migration);
// a group known only by its committed offsets can become either.
//
// Assignment is server-side. Every change (a member joins or leaves, a
// subscription, the preferred assignor, a subscribed topic's partitions, a
// topic matching a subscribed regex) starts a new group epoch, for which
// the assignor computes a target assignment: "uniform" (the default;
// counts differ by at most one, sticky to the previous target) or "range"
// (per topic, contiguous ranges), whichever most members ask for
// (ServerAssignor). Each member then reconciles on its heartbeats, as in
// Kafka's CurrentAssignmentBuilder:
//
//   - partitions it holds that are no longer its target are revoked first:
//     its assignment shrinks and its epoch stays until a heartbeat reports
//     them gone (owned partitions), or it is removed after its rebalance
//     timeout;
//   - then it moves to the group epoch and gets the target partitions no
//     other member holds or is still revoking; the rest follow on later
//     heartbeats, as their owners release them.
//
// So a partition never has two owners. A heartbeat with an epoch above the
// member's, or below it other than the previous epoch with owned
// partitions within the assignment (a lost answer), gets
// FENCED_MEMBER_EPOCH; an unknown member UNKNOWN_MEMBER_ID (clients rejoin
// with epoch 0). The coordinator sets the heartbeat interval and removes a
// member without a heartbeat for ConsumerSessionTimeout. Epoch -1 leaves;
// a static member (InstanceId) leaving with -2 keeps its assignment for
// its session timeout and a new member with its instance id takes it over
// (UNRELEASED_INSTANCE_ID while the old one is active).
//
// OffsetCommit to a consumer group must come from a member (v9+, as Kafka
// requires) at its current epoch, or at an older one for partitions it has
// held since that epoch (KIP-1251's rule, so a commit racing an epoch bump
// is not refused), else STALE_MEMBER_EPOCH; or without a member while the
// group has none. OffsetFetch v9 naming a member must carry its current
// epoch. Consumer groups live in memory like classic ones: after
// a restart members get UNKNOWN_MEMBER_ID and rejoin; committed offsets
// remain.
//
// # Caveats
//
//   - Topic ids (OffsetCommit/OffsetFetch v10) and transactional offset
//     commits are not served. The consumer protocol has no client-side
//     assignors (KIP-848's ConsumerGroupPrepareAssignment was dropped from
//     Kafka too), no rack-aware assignment, and no migration between
//     classic and consumer groups with members (Kafka's
//     group.consumer.migration.policy).
//   - OffsetCommit is answered once the offsets are durable in meta.db.
//     Concurrent commits share one bbolt transaction and fsync (bbolt's
//     Batch), which adds up to 10 ms to a lone commit.
//   - Group membership does not survive a restart: members learn it from
//     UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION and rejoin; records they
//     fetched but could not commit in between are delivered again
//     (at-least-once, as after any rebalance). This is deliberate: on an
//     edge box the consumers often restart with runnel (power loss), and
//     restored ghost members would hold their partitions for a session
//     timeout before anyone could consume them.
//   - Client id and host of members come from the request context (see
//     WithClient); without them DescribeGroups shows empty strings.
package group
