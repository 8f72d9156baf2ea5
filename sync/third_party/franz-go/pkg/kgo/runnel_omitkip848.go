//go:build kgoomitkip848

package kgo

// runnel: the tag kgoomitkip848 (runnel's release builds) compiles the
// KIP-848 consumer group protocol out (see runnel.go).
const runnelKIP848 = false
