//go:build !linux

package connlimit

import (
	"context"
	"net"
)

// Listen listens on addr (TCP). Only Linux holds silent connections
// back from the accept queue (see listen_linux.go).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
