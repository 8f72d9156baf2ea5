package forward

import "errors"

// Errors returned by the forwarder. Callers test with errors.Is.
var (
	ErrInvalidOptions = errors.New("forward: invalid options")
	ErrClosed         = errors.New("forward: closed")
	ErrStarted        = errors.New("forward: already started")
	ErrUnknownRoute   = errors.New("forward: unknown route")
	// ErrNoSink means no constructor is registered for an upstream's kind.
	ErrNoSink = errors.New("forward: no sink for upstream kind")
)
