// Package access is runnel's one permission model: who (a principal: a
// user name from Kafka SASL, MQTT, HTTP Basic, a client certificate, or
// Anonymous) may do what (an Op) to which resource (a log topic, a
// consumer group, a Kafka transactional id, the cluster).
//
// A Policy is a list of rules. A rule names a principal ("*" = every
// principal, Anonymous included), a resource kind, a name pattern and a
// set of operations, and either allows or denies them. The decision for
// one request is Kafka's (AclAuthorizer with allow.everyone.if.no.acl.found
// false):
//
//   - a matching deny rule wins over every allow rule;
//   - else a matching allow rule grants;
//   - else the request is denied.
//
// A rule grants exactly the operations it lists, plus Describe when it
// lists any of Read, Write, Create, Delete or Alter (Kafka's implied
// DESCRIBE: a client that may read a topic may see it in Metadata). It
// grants nothing on names its pattern does not match and nothing to other
// principals. Superusers (Options.Superusers) may do everything.
//
// Rules come from the configuration (NewPolicy) and, at run time, from
// Kafka's CreateAcls/DeleteAcls (SetDynamic, stored by ingest/kafka in
// meta.db); both sets decide together.
//
// Patterns: "*" matches every name; "prefix*" (one trailing star) matches
// the names that start with prefix (Kafka's PREFIXED); anything else
// matches that one name exactly (Kafka's LITERAL). A star elsewhere is a
// literal character.
package access
