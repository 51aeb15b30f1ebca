package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/wisp-dev/wisp/apitype"
)

// CreateKey creates an access key pair. The answer is the only time its
// secret is shown.
func (c *Client) CreateKey(ctx context.Context, description string) (apitype.AccessKey, error) {
	body := struct {
		Description string `json:"description,omitempty"`
	}{description}
	var k apitype.AccessKey
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/keys", json: body}, &k)
	return k, err
}

// ListKeys returns the access keys, oldest first, without their secrets.
func (c *Client) ListKeys(ctx context.Context) ([]apitype.AccessKey, error) {
	var out struct {
		Keys []apitype.AccessKey `json:"keys"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/keys"}, &out); err != nil {
		return nil, err
	}
	if out.Keys == nil {
		out.Keys = []apitype.AccessKey{}
	}
	return out.Keys, nil
}

// DeleteKey deletes an access key; requests signed with it fail from then
// on. An unknown id is an error for which IsNotFound is true.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/keys/" + url.PathEscape(id)}, nil)
	return err
}
