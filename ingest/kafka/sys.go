package kafka

import (
	"errors"
	"syscall"
)

// retriableAccept reports accept errors that are about resources running
// short for a moment (file descriptors, socket buffers, memory, a
// connection aborted before it was accepted): the accept loop backs off and
// retries instead of stopping the listener.
func retriableAccept(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
