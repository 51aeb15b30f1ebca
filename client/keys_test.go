package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func TestKeyRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		answer answer
		call   func(c *client.Client) error
		method string
		path   string
		body   string // the JSON body wanted, "" for none
	}{
		{
			name:   "create",
			answer: answer{201, `{"access_key_id":"WISPAAAAAAAAAAAAAAAA","secret_access_key":"s3cr3t","description":"ci","created_at":"2026-11-23T16:00:00Z"}`},
			call: func(c *client.Client) error {
				k, err := c.CreateKey(ctx, "ci")
				want := apitype.AccessKey{ID: "WISPAAAAAAAAAAAAAAAA", Secret: "s3cr3t", Description: "ci",
					CreatedAt: time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)}
				if err == nil && k != want {
					t.Errorf("CreateKey = %+v, want %+v", k, want)
				}
				return err
			},
			method: "POST", path: "/v1/keys", body: `{"description":"ci"}`,
		},
		{
			name:   "create without a description",
			answer: answer{201, `{"access_key_id":"WISPAAAAAAAAAAAAAAAA","secret_access_key":"s3cr3t"}`},
			call: func(c *client.Client) error {
				_, err := c.CreateKey(ctx, "")
				return err
			},
			method: "POST", path: "/v1/keys", body: `{}`,
		},
		{
			name:   "list",
			answer: answer{200, `{"keys":[{"access_key_id":"WISPAAAAAAAAAAAAAAAA"},{"access_key_id":"WISPBBBBBBBBBBBBBBBB"}]}`},
			call: func(c *client.Client) error {
				ks, err := c.ListKeys(ctx)
				if err == nil && (len(ks) != 2 || ks[1].ID != "WISPBBBBBBBBBBBBBBBB") {
					t.Errorf("ListKeys = %+v, want the two keys", ks)
				}
				return err
			},
			method: "GET", path: "/v1/keys",
		},
		{
			name:   "list none",
			answer: answer{200, `{}`},
			call: func(c *client.Client) error {
				ks, err := c.ListKeys(ctx)
				if err == nil && (ks == nil || len(ks) != 0) {
					t.Errorf("ListKeys = %#v, want an empty slice", ks)
				}
				return err
			},
			method: "GET", path: "/v1/keys",
		},
		{
			name:   "delete",
			answer: answer{204, ""},
			call: func(c *client.Client) error {
				return c.DeleteKey(ctx, "WISPAAAAAAAAAAAAAAAA")
			},
			method: "DELETE", path: "/v1/keys/WISPAAAAAAAAAAAAAAAA",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, tt.answer)
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			r := <-reqs
			if r.method != tt.method || r.path != tt.path {
				t.Errorf("request = %s %s, want %s %s", r.method, r.path, tt.method, tt.path)
			}
			if got := r.header.Get("Authorization"); got != "Bearer tok" {
				t.Errorf("Authorization = %q, want %q", got, "Bearer tok")
			}
			if got := string(r.body); got != tt.body {
				t.Errorf("body = %s, want %s", got, tt.body)
			}
		})
	}
}

func TestDeleteKeyNotFound(t *testing.T) {
	c, _ := fakeNode(t, answer{404, `{"type":"ResourceNotFoundException","message":"access key \"WISPAAAAAAAAAAAAAAAA\" not found"}`})
	err := c.DeleteKey(context.Background(), "WISPAAAAAAAAAAAAAAAA")
	if !client.IsNotFound(err) {
		t.Errorf("DeleteKey of an unknown key: err = %v, want one IsNotFound knows", err)
	}
}
