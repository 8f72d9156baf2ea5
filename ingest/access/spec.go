package access

import (
	"fmt"
	"strings"
)

// RuleSpec is one rule as written in a configuration file:
//
//	{user: writer, topic: "sensors.*", allow: [write, create]}
//	{user: dashboard, group: "dash-*", allow: [read]}
//	{user: ops, cluster: true, allow: [all]}
//	{user: "*", topic: "secrets", deny: [read]}
//	{user: etl, transactional-id: "etl-*", allow: [write]}
//
// Exactly one of Topic, Group, Cluster and TransactionalID names the
// resources; Allow and
// Deny list operations (read, write, create, delete, alter, describe,
// cluster-action, all). One spec with both Allow and Deny is two rules.
type RuleSpec struct {
	User    string `yaml:"user" json:"user"`
	Topic   string `yaml:"topic,omitempty" json:"topic,omitempty"`
	Group   string `yaml:"group,omitempty" json:"group,omitempty"`
	Cluster bool   `yaml:"cluster,omitempty" json:"cluster,omitempty"`
	// TransactionalID: Kafka transactional ids (write: use it for
	// transactions; describe: see it in DescribeTransactions and
	// ListTransactions).
	TransactionalID string   `yaml:"transactional-id,omitempty" json:"transactional_id,omitempty"`
	Allow           []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny            []string `yaml:"deny,omitempty" json:"deny,omitempty"`
}

// Rules converts the spec.
func (s RuleSpec) Rules() ([]Rule, error) {
	base := Rule{User: s.User}
	n := 0
	if s.Topic != "" {
		base.Kind, base.Pattern, n = Topic, s.Topic, n+1
	}
	if s.Group != "" {
		base.Kind, base.Pattern, n = Group, s.Group, n+1
	}
	if s.Cluster {
		base.Kind, base.Pattern, n = Cluster, ClusterName, n+1
	}
	if s.TransactionalID != "" {
		base.Kind, base.Pattern, n = TransactionalID, s.TransactionalID, n+1
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: want exactly one of topic, group, cluster and transactional-id", ErrInvalidRule)
	}
	if len(s.Allow)+len(s.Deny) == 0 {
		return nil, fmt.Errorf("%w: no allow or deny operations", ErrInvalidRule)
	}
	var out []Rule
	for _, side := range []struct {
		ops  []string
		deny bool
	}{{s.Allow, false}, {s.Deny, true}} {
		if len(side.ops) == 0 {
			continue
		}
		r := base
		r.Deny = side.deny
		for _, name := range side.ops {
			op, err := ParseOp(name)
			if err != nil {
				return nil, err
			}
			r.Ops |= op
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Spec is the inverse of RuleSpec.Rules for one rule.
func (r Rule) Spec() RuleSpec {
	s := RuleSpec{User: r.User}
	switch r.Kind {
	case Topic:
		s.Topic = r.Pattern
	case Group:
		s.Group = r.Pattern
	case Cluster:
		s.Cluster = true
	case TransactionalID:
		s.TransactionalID = r.Pattern
	}
	ops := strings.Split(r.Ops.String(), ",")
	if r.Deny {
		s.Deny = ops
	} else {
		s.Allow = ops
	}
	return s
}
