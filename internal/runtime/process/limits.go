package process

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wisp-dev/wisp/internal/connlimit"
)

// An instance's own servers (its Runtime API, and Wisp's API inside its
// sandbox) face code the node does not trust: bound how long a request may
// take to arrive, how large its headers are, and how many connections it
// may hold, so a function cannot tie up the node's memory or descriptors.
const (
	// instanceMaxConns caps each of an instance's listeners. A runtime
	// holds one connection (the bundled bootstraps and aws-lambda-go
	// keep one alive), a function's own calls to Wisp's API a few more;
	// 16 is room for those, and 32 descriptors per instance at most.
	instanceMaxConns = 16
	// instanceMaxUnauthenticated caps the connections that have not yet
	// spoken the API they reach (a Runtime API call, or Wisp's API with
	// the function's token): half, so sockets a function opens and leaves
	// never crowd out its runtime's.
	instanceMaxUnauthenticated = instanceMaxConns / 2
	// instanceHeaderWait bounds a request's headers: the runtime is a
	// local process that sends them at once.
	instanceHeaderWait = 5 * time.Second
	// instanceBodyWait bounds a whole request: the largest, a 6 MB
	// response, takes milliseconds over loopback.
	instanceBodyWait = 30 * time.Second
	// instanceIdleWait bounds a connection between requests. A runtime's
	// connection is idle while its handler runs, which may be 15
	// minutes; the bootstraps send again on a new one if it was closed,
	// so 5 minutes only spares them that for most invocations.
	instanceIdleWait  = 5 * time.Minute
	instanceMaxHeader = 64 << 10
)

// instanceListener holds an instance's listener to the caps above.
func instanceListener(ln net.Listener, log *slog.Logger) *connlimit.Listener {
	// ShedYoung: the runtime connects after what its function opened at
	// init, and must get in past it.
	return connlimit.NewListener(ln, connlimit.Limits{MaxConns: instanceMaxConns,
		MaxUnauthenticated: instanceMaxUnauthenticated, ShedYoung: true}, log)
}

// instanceServer returns an http.Server for h on ln with the bounds above
// and writeTimeout (the node's, connlimit.WriteTimeout, but in tests):
// /next, which waits as long as the instance is idle, restarts it when it
// has an invocation to hand over.
func (d *Driver) instanceServer(h http.Handler, ln *connlimit.Listener) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: instanceHeaderWait,
		ReadTimeout:       instanceBodyWait,
		WriteTimeout:      d.writeTimeout,
		IdleTimeout:       instanceIdleWait,
		MaxHeaderBytes:    instanceMaxHeader,
		ConnState:         ln.ConnState,
		ConnContext:       connlimit.ConnContext,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
}
