package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wisp-dev/wisp/internal/connlimit"
)

// The node's HTTP server's own timeouts; the write timeout and the body
// rate are connlimit's, shared with the instances' servers and with the
// handlers that set their own.
const (
	// headerTimeout bounds the request line and headers: a few hundred
	// bytes every client sends at once, so 10 s covers a slow link's round
	// trips and a lost packet's retransmits, and a client that sends its
	// headers a byte at a time holds its connection for 10 s at most.
	headerTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection with no next request: 60
	// s is longer than clients wait between calls they reuse connections
	// for, and as long as common proxies (AWS ALB) keep one; without it an
	// idle connection was held until the client let go.
	idleTimeout = time.Minute
	// maxHeaderBytes is net/http's default, said out loud: it is what an
	// unauthenticated connection can make the node hold per request.
	maxHeaderBytes = http.DefaultMaxHeaderBytes
)

// Connection caps by default, from the descriptor limit.
const (
	// maxConnsDefault caps the derived cap on connections: each holds a
	// goroutine and about 10 KB of buffers, so 64 Ki of them are already
	// most of a GB whatever the descriptor limit.
	maxConnsDefault = 64 << 10
	// unknownFileLimit stands for a limit the system does not say: a
	// usual hard limit where one is low (macOS's, many containers').
	unknownFileLimit = 8192
)

// connLimits are the main listener's caps: cfg's, or derived from the
// descriptor limit. Half the descriptors are kept for the rest of the node:
// JetStream's files (tens on a new node, a few per stream as data grows),
// and each instance's pipes, sandbox socket, listeners and connections
// (about 40 at the instances' caps; a node with 8 GB for instances runs
// up to 64 of 128 MB, so 2,560), and code being unpacked. Half of what a
// service manager gives (systemd: 524,288) or this machine's 20,000 is
// plenty for both; on a 1,024 limit, 512 connections is still more than a
// small node needs. Unauthenticated connections get half of the
// connections, so authenticated callers always have the other half; one
// source gets a quarter of the unauthenticated share.
func connLimits(cfg Config, fileLimit uint64) (connLimit, error) {
	if cfg.MaxConns < 0 || cfg.MaxUnauthenticatedConns < 0 || cfg.MaxConnsPerSource < 0 {
		return connLimit{}, fmt.Errorf("server: connection caps must not be negative (max conns %d, unauthenticated %d, per source %d)",
			cfg.MaxConns, cfg.MaxUnauthenticatedConns, cfg.MaxConnsPerSource)
	}
	derive := fileLimit
	if derive == 0 {
		derive = unknownFileLimit
	}
	lim := connlimit.Limits{MaxConns: cfg.MaxConns, MaxUnauthenticated: cfg.MaxUnauthenticatedConns, PerSource: cfg.MaxConnsPerSource}
	if lim.MaxConns == 0 {
		lim.MaxConns = int(min(derive/2, maxConnsDefault))
	}
	if lim.MaxUnauthenticated == 0 {
		lim.MaxUnauthenticated = max(lim.MaxConns/2, 1)
	}
	if lim.PerSource == 0 {
		lim.PerSource = max(lim.MaxUnauthenticated/4, 1)
	}
	if err := lim.Check(); err != nil {
		return connLimit{}, fmt.Errorf("server: %w", err)
	}
	return connLimit{lim, fileLimit}, nil
}

// connLimit is the main listener's caps and the descriptor limit they
// came from (0: not known).
type connLimit struct {
	connlimit.Limits
	fileLimit uint64
}

// raiseFileLimit raises the descriptor limit as far as the process may,
// and returns it (0: not known).
func raiseFileLimit(log *slog.Logger) uint64 {
	limit, err := connlimit.RaiseFileLimit()
	if err != nil {
		log.Warn("the descriptor limit could not be raised", "limit", limit, "err", err)
	}
	return limit
}

// listen opens the node's listener, holding its connections to lim.
func (n *Node) listen(lim connLimit) error {
	ln, err := connlimit.Listen(context.Background(), n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", n.cfg.Listen, err)
	}
	n.ln = connlimit.NewListener(ln, lim.Limits, n.log)
	if lim.fileLimit > 0 && uint64(lim.MaxConns) >= lim.fileLimit {
		n.log.Warn("the connection cap is not below the descriptor limit: a flood can still use up the node's descriptors",
			"max_conns", lim.MaxConns, "file_limit", lim.fileLimit)
	}
	n.log.Info("connection caps", "file_limit", lim.fileLimit, "max_conns", lim.MaxConns,
		"max_unauthenticated", lim.MaxUnauthenticated, "per_source", lim.PerSource)
	return nil
}

// httpServer is the node's HTTP server for h, with its timeouts and the
// hooks the listener's caps need.
func (n *Node) httpServer(h http.Handler) *http.Server { return n.httpServerOn(n.ln, h) }

// httpServerOn is httpServer for another of the node's listeners.
func (n *Node) httpServerOn(ln *connlimit.Listener, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           connlimit.Rates{}.BodyRate(h),
		ReadHeaderTimeout: headerTimeout,
		// No ReadTimeout: BodyRate bounds bodies by their rate instead, so
		// a 50 MB deploy on a slow link is not cut off.
		WriteTimeout:   connlimit.WriteTimeout,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ConnState:      ln.ConnState,
		ConnContext:    connlimit.ConnContext,
		ErrorLog:       slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
}
