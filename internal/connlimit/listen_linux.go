package connlimit

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// deferSeconds is how long the kernel holds a connection that has sent
// nothing back from the accept queue (TCP_DEFER_ACCEPT): after it, one
// still silent is accepted all the same, and the header timeout ends it.
const deferSeconds = 30

// Listen listens on addr (TCP) with the kernel holding each new
// connection back until its first bytes arrive (TCP_DEFER_ACCEPT): an
// HTTP client speaks first, so a caller's connection is accepted at once,
// while one opened and left silent, a flood's, takes no descriptor and no
// place in the accept queue for deferSeconds. Without it, a flood that
// reopens what the node closes keeps the accept queue full, and the
// kernel drops new connections' first packets (a health probe then waits
// a second for the retry).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferSeconds)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(ctx, "tcp", addr)
}
