package kafka

import "errors"

// Errors returned by the server.
var (
	// ErrInvalidOptions is wrapped by Options.Validate.
	ErrInvalidOptions = errors.New("kafka: invalid options")
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("kafka: server closed")
	// ErrFrameTooLarge: a length prefix over MaxFrameBytes (connection closed).
	ErrFrameTooLarge = errors.New("kafka: request frame too large")
	// ErrMalformed: a request that cannot be decoded (connection closed).
	ErrMalformed = errors.New("kafka: malformed request")
	// ErrAuth: SASL authentication failed or was skipped (connection closed).
	ErrAuth = errors.New("kafka: authentication failed")
)
