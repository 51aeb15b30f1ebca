package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/wisp-dev/wisp/apitype"
)

// LogsOptions says which records Logs asks for.
type LogsOptions struct {
	// Since is a duration back from now ("10m", "2h", "7d") or an RFC 3339
	// time. Empty: every record kept, or the last hour when following.
	Since string
	// Follow keeps the stream open for new records until ctx ends.
	Follow bool
	// RequestID, when set, asks for the records of that invocation only.
	RequestID string
}

// Logs calls fn for each of the function's log records, oldest first, as
// they arrive. A deleted function's logs are deleted with it: a function
// that does not exist has none.
// Without opt.Follow it returns once it has the records the node held;
// with it, it returns ctx's error when ctx ends. An error from fn ends Logs
// with that error.
func (c *Client) Logs(ctx context.Context, name string, opt LogsOptions, fn func(apitype.LogRecord) error) error {
	q := url.Values{}
	if opt.Since != "" {
		q.Set("since", opt.Since)
	}
	if opt.Follow {
		q.Set("follow", "true")
	}
	if opt.RequestID != "" {
		q.Set("request_id", opt.RequestID)
	}
	path := functionPath(name) + "/logs"
	resp, err := c.send(ctx, request{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var rec apitype.LogRecord
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("client: the node cut off the logs of %s: %w", name, err)
			}
			return fmt.Errorf("client: reading the logs of %s: %w", name, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
