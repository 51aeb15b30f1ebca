// Package store owns the node's connection to NATS JetStream: an embedded
// server in-process (the zero-configuration default) or an existing NATS
// server. Every other package keeps its state through the JetStream context
// it hands out.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where the state lives. The zero value is not enough: an
// embedded server needs Dir.
type Config struct {
	// URL of an existing NATS server with JetStream. When set, no server is
	// embedded and Dir and Listen are unused.
	URL string
	// Dir holds the embedded server's JetStream data.
	Dir string
	// Listen, when set ("host:port", port 0 for any), lets other nodes
	// connect to the embedded server. Empty: in-process connections only.
	Listen string
	// Name names the connection (and the embedded server) in NATS.
	Name   string
	Logger *slog.Logger
	// Reserve is the free space of the data dir's disk under which the
	// store refuses writes (see Writable), so that JetStream never runs
	// out of space part way through a write; default 2% of the disk,
	// between 16 MiB and 1 GiB.
	Reserve int64
	// CheckEvery is how often the store looks at its disk and its
	// server; default 1s.
	CheckEvery time.Duration
}

// maxStore is the embedded server's JetStream storage limit. JetStream
// reserves each stream's MaxBytes against it when the stream is made, so
// a limit near the disk's size refuses streams that would all fit in
// practice (the node would not start on a small disk), and a stream per
// function multiplies the reservations. The node bounds its disk use
// itself instead: every stream has a bound, sized from the space there
// is (see Space), and writes stop at the reserve (see Writable).
const maxStore = 1 << 50

// Store is an open connection to JetStream.
type Store struct {
	Conn   *nats.Conn
	JS     jetstream.JetStream
	srv    *server.Server // nil when the server is external
	closed chan struct{}  // closed when Conn is
	log    *slog.Logger
	mon    *monitor
	space  Space
}

// Open starts the embedded server (unless cfg.URL is set) and connects.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	name := cfg.Name
	if name == "" {
		name = "wisp"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = time.Second
	}
	s := &Store{closed: make(chan struct{}), log: cfg.Logger}
	s.mon = &monitor{s: s, every: cfg.CheckEvery, kick: make(chan struct{}, 1)}
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(s.closed) })}
	url := cfg.URL
	if url == "" {
		if cfg.Dir == "" {
			return nil, errors.New("store: embedded nats needs a data dir")
		}
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		var err error
		if s.space, err = measureSpace(cfg.Dir, cfg.Reserve); err != nil {
			return nil, err
		}
		s.mon.dir, s.mon.reserve = cfg.Dir, s.space.Reserve
		srv, err := startEmbedded(cfg, name, s.mon)
		if err != nil {
			return nil, err
		}
		s.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		s.shutdownServer()
		return nil, fmt.Errorf("store: connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		s.shutdownServer()
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	// Fail early, with a clear message, when the server has no JetStream.
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		s.shutdownServer()
		return nil, fmt.Errorf("store: jetstream not available at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	s.Conn, s.JS = nc, js
	if err := s.ensureHealthStream(ctx); err != nil {
		nc.Close()
		s.shutdownServer()
		return nil, fmt.Errorf("store: %w", err)
	}
	s.mon.start()
	return s, nil
}

func startEmbedded(cfg Config, name string, mon *monitor) (*server.Server, error) {
	o := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		DontListen: cfg.Listen == "",
		NoSigs:     true,
		// JetStream's own sync interval bounds what a power cut can lose;
		// a clean stop flushes everything.
		SyncInterval:      2 * time.Second,
		JetStreamMaxStore: maxStore,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("store: nats listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("store: nats listen port %q is not a port", port)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		o.Host, o.Port = host, p
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("store: embedded nats: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log: cfg.Logger, watch: mon.heard}, false, false, false)
	// A restart after a failure starts JetStream as it started first.
	mon.jsCfg = server.JetStreamConfig{StoreDir: o.StoreDir, MaxStore: o.JetStreamMaxStore,
		MaxMemory: o.JetStreamMaxMemory, SyncInterval: o.SyncInterval}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("store: embedded nats did not start within 10s")
	}
	return srv, nil
}

// ClientURL is the address other nodes connect to: the embedded server's
// listener, or the external server this store uses. Empty when the embedded
// server accepts in-process connections only.
func (s *Store) ClientURL() string {
	if s.srv == nil {
		return s.Conn.ConnectedUrlRedacted()
	}
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Close drains the connection and stops the embedded server, which flushes
// JetStream to disk.
func (s *Store) Close() error {
	s.mon.close()
	err := s.Conn.Drain()
	// Drain returns before it is done; wait so nothing is cut off.
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		s.Conn.Close()
	}
	s.shutdownServer()
	return err
}

func (s *Store) shutdownServer() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}
