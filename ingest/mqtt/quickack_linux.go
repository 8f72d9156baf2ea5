package mqtt

import (
	"net"
	"sync/atomic"
	"syscall"
)

// quickAckConn is a TCP connection that acknowledges what it read at once
// (TCP_QUICKACK after each read) instead of delaying the TCP ACK until
// the next PUBACK goes out. Clients that leave Nagle's algorithm on
// (mosquitto_pub without --nodelay, libmosquitto's default) send only
// the first of a group of publishes until that ACK comes back: with
// Linux's delayed ACK the rest of the group would wait for the PUBACK of
// the first, a whole fsync later, and go into the next commit. A client
// that publishes one message at a time gains nothing from it (its PUBACK
// carries the ACK), and the system call after each read was 9% of the
// broker's CPU time with 100 such clients: its session turns it off
// (delayAcks) while it publishes that way.
type quickAckConn struct {
	*net.TCPConn
	rc   syscall.RawConn
	lazy atomic.Bool // leave ACKs to the kernel (delayAcks)
}

func (c *quickAckConn) delayAcks(on bool) { c.lazy.Store(on) }
func (c *quickAckConn) acksDelayed() bool { return c.lazy.Load() }

func quickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, rc: rc}
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 && !c.lazy.Load() {
		// Linux leaves quick-ack mode on its own: set it again after
		// each read.
		_ = c.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return n, err
}
