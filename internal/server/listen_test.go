package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/wisp-dev/wisp/internal/connlimit"
)

func TestConnLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		fileLimit uint64
		want      connlimit.Limits
		bad       bool
	}{
		{"from the limit", Config{}, 20000, connlimit.Limits{MaxConns: 10000, MaxUnauthenticated: 5000, PerSource: 1250}, false},
		{"limit not known", Config{}, 0, connlimit.Limits{MaxConns: 4096, MaxUnauthenticated: 2048, PerSource: 512}, false},
		{"a huge limit", Config{}, 1 << 20, connlimit.Limits{MaxConns: 65536, MaxUnauthenticated: 32768, PerSource: 8192}, false},
		{"a tiny limit", Config{}, 4, connlimit.Limits{MaxConns: 2, MaxUnauthenticated: 1, PerSource: 1}, false},
		{"given", Config{MaxConns: 100, MaxUnauthenticatedConns: 80, MaxConnsPerSource: 80}, 20000,
			connlimit.Limits{MaxConns: 100, MaxUnauthenticated: 80, PerSource: 80}, false},
		{"only the total given", Config{MaxConns: 100}, 20000, connlimit.Limits{MaxConns: 100, MaxUnauthenticated: 50, PerSource: 12}, false},
		{"negative", Config{MaxConns: -1}, 20000, connlimit.Limits{}, true},
		{"unauthenticated over the total", Config{MaxConns: 10, MaxUnauthenticatedConns: 11}, 20000, connlimit.Limits{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := connLimits(tc.cfg, tc.fileLimit)
			if (err != nil) != tc.bad {
				t.Fatalf("connLimits: %v, want an error: %v", err, tc.bad)
			}
			if !tc.bad && got.Limits != tc.want {
				t.Errorf("got %+v, want %+v", got.Limits, tc.want)
			}
		})
	}
}

// TestHTTPServerBounds: the node's server bounds every phase of a
// connection (headers, writes, idle keep-alive) and watches its
// connections for the caps.
func TestHTTPServerBounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := &Node{log: slog.New(slog.NewTextHandler(io.Discard, nil)), ln: connlimit.NewListener(ln, connlimit.Limits{MaxConns: 1}, nil)}
	srv := n.httpServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("unbounded: header %v, write %v, idle %v, header bytes %d",
			srv.ReadHeaderTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	if srv.ConnState == nil || srv.ConnContext == nil {
		t.Error("the server does not tell the listener which connections are idle or authenticated")
	}
}
