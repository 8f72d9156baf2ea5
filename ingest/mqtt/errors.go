package mqtt

import "errors"

// Errors returned by the package. Callers test with errors.Is.
var (
	// ErrClosed is returned by Serve* after Close.
	ErrClosed = errors.New("mqtt: broker closed")
	// ErrNoLog is returned by New when Options.Log is nil.
	ErrNoLog = errors.New("mqtt: options: Log is required")
	// ErrInvalidRoute reports a malformed route (flag or config).
	ErrInvalidRoute = errors.New("mqtt: invalid route")
	// ErrInvalidOptions reports an invalid option value.
	ErrInvalidOptions = errors.New("mqtt: invalid options")
	// ErrInvalidACL reports a malformed ACL rule.
	ErrInvalidACL = errors.New("mqtt: invalid ACL rule")
	// ErrTLS reports an unusable TLS configuration.
	ErrTLS = errors.New("mqtt: TLS configuration")
)
