package process

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// An instance's own servers (its Runtime API, and Wisp's API inside its
// sandbox) face code the node does not trust: bound how long a request may
// take to arrive, how large its headers are, and how many connections it
// may hold, so a function cannot tie up the node's memory or descriptors.
const (
	instanceMaxConns   = 8
	instanceHeaderWait = 5 * time.Second
	instanceBodyWait   = 30 * time.Second
	instanceIdleWait   = 5 * time.Minute
	instanceMaxHeader  = 64 << 10
)

// instanceServer returns an http.Server for h with the bounds above.
// WriteTimeout stays unset: /next waits as long as the instance is idle.
func instanceServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: instanceHeaderWait,
		ReadTimeout:       instanceBodyWait,
		IdleTimeout:       instanceIdleWait,
		MaxHeaderBytes:    instanceMaxHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// limitListener accepts at most n connections at once; the rest wait in
// the kernel's backlog.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func limitConns(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
