//go:build !kgoomitkip848

package kgo

// runnel: KIP-848 is built in unless the tag kgoomitkip848 is given (see
// runnel.go). runnel's tests run franz-go's KIP-848 consumer against
// runnel's coordinator; runnel's own code never asks for it.
const runnelKIP848 = true
