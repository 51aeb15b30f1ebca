//go:build !linux

package process

import (
	"log/slog"
	"net"
)

// peerListener cannot tell a connection's process off Linux; there is no
// sandbox there either.
type peerListener struct {
	net.Listener
	owner func() ([]int, error)
	log   *slog.Logger
}
