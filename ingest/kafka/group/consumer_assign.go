package group

import (
	"sort"
)

// Server-side assignors of the consumer group protocol. Each maps member
// id → its target partitions, given each member's subscribed topics (that
// exist) and the partitions of each topic. Members are ordered by id, so
// the result depends only on the group, never on map order.

// assignRange gives each member, per topic, a contiguous range of the
// topic's partitions among the members subscribed to it; the first members
// get one more when the partitions do not divide evenly (Kafka's range).
func assignRange(subs map[string][]string, parts map[string]int32) map[string]tpSet {
	out := make(map[string]tpSet, len(subs))
	byTopic := map[string][]string{}
	for id, ts := range subs {
		out[id] = tpSet{}
		for _, t := range ts {
			byTopic[t] = append(byTopic[t], id)
		}
	}
	for t, ids := range byTopic {
		sort.Strings(ids)
		n, k := int(parts[t]), len(ids)
		p := 0
		for i, id := range ids {
			count := n / k
			if i < n%k {
				count++
			}
			for j := 0; j < count; j++ {
				out[id][tp{t, int32(p)}] = struct{}{}
				p++
			}
		}
	}
	return out
}

// assignUniform spreads every subscribed partition so that members'
// counts differ by at most one where subscriptions allow, and keeps each
// member's previous target partitions where it can (sticky), so a
// rebalance moves as few partitions as possible.
func assignUniform(subs map[string][]string, parts map[string]int32, prev map[string]tpSet) map[string]tpSet {
	out := make(map[string]tpSet, len(subs))
	ids := make([]string, 0, len(subs))
	subscribed := map[string]map[string]bool{} // member → topic set
	var all []tp
	seen := map[string]bool{}
	for id, ts := range subs {
		ids = append(ids, id)
		out[id] = tpSet{}
		subscribed[id] = map[string]bool{}
		for _, t := range ts {
			subscribed[id][t] = true
			if !seen[t] {
				seen[t] = true
				for p := int32(0); p < parts[t]; p++ {
					all = append(all, tp{t, p})
				}
			}
		}
	}
	sort.Strings(ids)
	sort.Slice(all, func(i, j int) bool {
		if all[i].topic != all[j].topic {
			return all[i].topic < all[j].topic
		}
		return all[i].partition < all[j].partition
	})
	if len(ids) == 0 {
		return out
	}
	// quota: with every member eligible, floor(P/N) each and one more for
	// P mod N of them. Heterogeneous subscriptions fall back to
	// least-loaded placement below.
	floor, extra := len(all)/len(ids), len(all)%len(ids)
	taken := map[tp]bool{}
	// Sticky pass: each member keeps up to floor of its previous target.
	for _, id := range ids {
		var keep []tp
		for k := range prev[id] {
			if subscribed[id][k.topic] && k.partition < parts[k.topic] {
				keep = append(keep, k)
			}
		}
		sort.Slice(keep, func(i, j int) bool {
			if keep[i].topic != keep[j].topic {
				return keep[i].topic < keep[j].topic
			}
			return keep[i].partition < keep[j].partition
		})
		for _, k := range keep {
			if len(out[id]) >= floor || taken[k] {
				continue
			}
			out[id][k] = struct{}{}
			taken[k] = true
		}
	}
	// One more kept partition for up to extra members.
	for _, id := range ids {
		if extra == 0 {
			break
		}
		for k := range prev[id] {
			if subscribed[id][k.topic] && k.partition < parts[k.topic] && !taken[k] && len(out[id]) == floor {
				out[id][k] = struct{}{}
				taken[k] = true
				extra--
				break
			}
		}
	}
	// The rest go to the least-loaded eligible member.
	for _, k := range all {
		if taken[k] {
			continue
		}
		best := ""
		for _, id := range ids {
			if !subscribed[id][k.topic] {
				continue
			}
			if best == "" || len(out[id]) < len(out[best]) {
				best = id
			}
		}
		if best != "" {
			out[best][k] = struct{}{}
			taken[k] = true
		}
	}
	return out
}
