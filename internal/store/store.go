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
}

// Store is an open connection to JetStream.
type Store struct {
	Conn   *nats.Conn
	JS     jetstream.JetStream
	srv    *server.Server // nil when the server is external
	closed chan struct{}  // closed when Conn is
}

// Open starts the embedded server (unless cfg.URL is set) and connects.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	name := cfg.Name
	if name == "" {
		name = "wisp"
	}
	s := &Store{closed: make(chan struct{})}
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(s.closed) })}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg, name)
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
	return s, nil
}

func startEmbedded(cfg Config, name string) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: embedded nats needs a data dir")
	}
	o := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		DontListen: cfg.Listen == "",
		NoSigs:     true,
		NoLog:      true,
		// JetStream's own sync interval bounds what a power cut can lose;
		// a clean stop flushes everything.
		SyncInterval: 2 * time.Second,
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
