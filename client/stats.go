package client

import (
	"context"
	"net/http"

	"github.com/wisp-dev/wisp/apitype"
)

// Stats returns each function's activity on the node (GET /v1/stats), by
// name: what its metrics counted since it started, so in a cluster each
// node answers its own. A function that has not run on the node has no
// stats.
func (c *Client) Stats(ctx context.Context) ([]apitype.FunctionStats, error) {
	var out struct {
		Functions []apitype.FunctionStats `json:"functions"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/stats"}, &out); err != nil {
		return nil, err
	}
	if out.Functions == nil {
		out.Functions = []apitype.FunctionStats{}
	}
	return out.Functions, nil
}
