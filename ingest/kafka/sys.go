package kafka

import "syscall"

// errTooManyFiles is retried by the accept loop (EMFILE).
var errTooManyFiles error = syscall.EMFILE
