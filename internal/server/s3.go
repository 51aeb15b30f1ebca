package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/objects"
	"github.com/wisp-dev/wisp/internal/s3"
)

// s3Node is the node's S3 API: its object store and, when S3Listen is
// set, the listener and server that serve it.
type s3Node struct {
	objects *objects.Store
	ln      *connlimit.Listener
	srv     *http.Server
	done    chan error // the server's end
	// stopSweep ends the sweep of abandoned uploads and waits for it.
	stopSweep func()
}

// s3Limits are the S3 listener's connection caps: a quarter of the main
// listener's, beside them (the main listener keeps half the descriptors
// for the rest of the node; these come out of that half).
func s3Limits(main connlimit.Limits) connlimit.Limits {
	return connlimit.Limits{
		MaxConns:           max(main.MaxConns/4, 1),
		MaxUnauthenticated: max(main.MaxUnauthenticated/4, 1),
		PerSource:          max(main.PerSource/4, 1),
	}
}

// openObjects opens the object store the S3 API serves.
func (n *Node) openObjects(ctx context.Context) (err error) {
	n.s3.objects, err = objects.New(ctx, n.store, objects.Config{Logger: n.log})
	return err
}

func (n *Node) closeObjects(context.Context) error {
	n.s3.objects.Close()
	return nil
}

// openS3 listens on S3Listen and serves the S3 API there; with no
// S3Listen it does nothing.
func (n *Node) openS3(ctx context.Context, main connlimit.Limits) error {
	if n.cfg.S3Listen == "" {
		return nil
	}
	ln, err := connlimit.Listen(ctx, n.cfg.S3Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s for S3: %w", n.cfg.S3Listen, err)
	}
	n.s3.ln = connlimit.NewListener(ln, s3Limits(main), n.log)
	h := s3.NewHandler(s3.Config{Objects: n.s3.objects, SecretFor: n.keys.Secret, Region: n.cfg.Region,
		BaseDomains: n.cfg.S3Domains, Logger: n.log, Now: n.cfg.Now})
	n.s3.srv = n.httpServerOn(n.s3.ln, h)
	n.sweepUploads(context.WithoutCancel(ctx))
	n.s3.done = make(chan error, 1)
	go func() { n.s3.done <- n.s3.srv.Serve(n.s3.ln) }()
	n.log.Info("S3 API listening", "url", n.S3URL())
	return nil
}

// uploadSweepEvery is how often the node aborts the multipart uploads
// abandoned past objects.Config.UploadMaxAge.
const uploadSweepEvery = time.Hour

// sweepUploads aborts abandoned uploads every uploadSweepEvery until
// stopSweep.
func (n *Node) sweepUploads(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.s3.stopSweep = func() { cancel(); <-done }
	go func() {
		defer close(done)
		tick := time.NewTicker(uploadSweepEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			swept, err := n.s3.objects.SweepUploads(ctx, n.cfg.Now())
			if err != nil && ctx.Err() == nil {
				n.log.Warn("S3: sweep of abandoned uploads failed", "swept", swept, "err", err)
			} else if swept > 0 {
				n.log.Info("S3: abandoned uploads aborted", "swept", swept)
			}
		}
	}()
}

// closeS3 lets the S3 requests in flight finish (within ctx), then stops.
func (n *Node) closeS3(ctx context.Context) error {
	if n.s3.srv == nil {
		return nil
	}
	n.s3.stopSweep()
	err := n.s3.srv.Shutdown(ctx)
	if err != nil {
		n.s3.srv.Close() //nolint:errcheck // cut off what did not finish
	}
	if serr := <-n.s3.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// S3URL is the S3 API's base URL, with the port it really listens on; ""
// when the node serves no S3 API.
func (n *Node) S3URL() string {
	if n.s3.ln == nil {
		return ""
	}
	return "http://" + n.s3.ln.Addr().String()
}
