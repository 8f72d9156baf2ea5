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
//
// Exactly one of Topic, Group and Cluster names the resources; Allow and
// Deny list operations (read, write, create, delete, alter, describe,
// cluster-action, all). One spec with both Allow and Deny is two rules.
type RuleSpec struct {
	User    string   `yaml:"user" json:"user"`
	Topic   string   `yaml:"topic,omitempty" json:"topic,omitempty"`
	Group   string   `yaml:"group,omitempty" json:"group,omitempty"`
	Cluster bool     `yaml:"cluster,omitempty" json:"cluster,omitempty"`
	Allow   []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny    []string `yaml:"deny,omitempty" json:"deny,omitempty"`
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
	if n != 1 {
		return nil, fmt.Errorf("%w: want exactly one of topic, group and cluster", ErrInvalidRule)
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
	}
	ops := strings.Split(r.Ops.String(), ",")
	if r.Deny {
		s.Deny = ops
	} else {
		s.Allow = ops
	}
	return s
}
