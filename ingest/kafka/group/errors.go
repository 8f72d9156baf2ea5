package group

import "errors"

// Errors returned by New and Options.Validate. Callers test with errors.Is.
var (
	// ErrNoMeta means Options.Meta is nil: committed offsets need a store.
	ErrNoMeta = errors.New("group: Options.Meta is required")
	// ErrInvalidOptions wraps any other unusable option.
	ErrInvalidOptions = errors.New("group: invalid options")
)
