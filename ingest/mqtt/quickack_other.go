//go:build !linux

package mqtt

import "net"

// quickAck: TCP_QUICKACK is Linux's (see quickack_linux.go).
func quickAck(c net.Conn) net.Conn { return c }
