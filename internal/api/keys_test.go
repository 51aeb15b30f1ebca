package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/api"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/store"
)

// keysAPI serves the API with access keys over a real embedded JetStream,
// and returns a client of it and the Keys behind it. The /v1/keys calls need
// no registry.
func keysAPI(t *testing.T) (apiClient, *auth.Keys) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	keys, err := auth.OpenKeys(ctx, s.JS, auth.KeysConfig{KeyFile: filepath.Join(t.TempDir(), "keys.key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	srv := httptest.NewServer(api.New(api.Config{AdminToken: "tok", Keys: keys,
		StageDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return apiClient{t: t, base: srv.URL, token: "tok"}, keys
}

func TestKeysAPI(t *testing.T) {
	c, keys := keysAPI(t)
	ctx := context.Background()

	r := c.json("GET", "/v1/keys", nil)
	mustStatus(t, r, http.StatusOK)
	if got := strings.Join(strings.Fields(string(r.body)), ""); got != `{"keys":[]}` {
		t.Errorf("GET /v1/keys with no keys = %s, want {\"keys\": []}", r.body)
	}

	r = c.json("POST", "/v1/keys", map[string]string{"description": "ci"})
	mustStatus(t, r, http.StatusCreated)
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	var created auth.AccessKey
	r.decode(t, &created)
	if len(created.ID) != 20 || len(created.Secret) != 40 || created.Description != "ci" || created.CreatedAt.IsZero() {
		t.Fatalf("created key = %+v", created)
	}
	if got, err := keys.Secret(ctx, created.ID); err != nil || got != created.Secret {
		t.Errorf("Secret of the created key = %q, %v; want the secret answered", got, err)
	}

	// No body at all is a key without a description.
	r = c.do("POST", "/v1/keys", "", nil)
	mustStatus(t, r, http.StatusCreated)
	var second auth.AccessKey
	r.decode(t, &second)

	r = c.json("GET", "/v1/keys", nil)
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.body), created.Secret) || strings.Contains(string(r.body), "secret_access_key") {
		t.Errorf("GET /v1/keys shows a secret: %s", r.body)
	}
	var list struct{ Keys []auth.AccessKey }
	r.decode(t, &list)
	if len(list.Keys) != 2 || list.Keys[0].ID != created.ID || list.Keys[0].Description != "ci" || list.Keys[1].ID != second.ID {
		t.Errorf("GET /v1/keys = %+v, want the two keys, oldest first", list.Keys)
	}

	mustStatus(t, c.json("DELETE", "/v1/keys/"+created.ID, nil), http.StatusNoContent)
	if _, err := keys.Secret(ctx, created.ID); err == nil {
		t.Error("a deleted key still has a secret")
	}
	for _, id := range []string{created.ID, "WISPAAAAAAAAAAAAAAAA", "nope"} {
		r = c.json("DELETE", "/v1/keys/"+id, nil)
		mustStatus(t, r, http.StatusNotFound)
		if r.errType() != "ResourceNotFoundException" || !strings.Contains(string(r.body), id) {
			t.Errorf("DELETE of %s: %s, want a ResourceNotFoundException naming it", id, r.body)
		}
	}
}

func TestKeysAPIBadInput(t *testing.T) {
	c, keys := keysAPI(t)
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		token    string
		status   int
		wantType string
	}{
		{"long description", "POST", "/v1/keys", `{"description":"` + strings.Repeat("a", 257) + `"}`, "tok", 400, "InvalidParameterValueException"},
		{"unknown field", "POST", "/v1/keys", `{"desc":"x"}`, "tok", 400, "InvalidParameterValueException"},
		{"not JSON", "POST", "/v1/keys", `description=x`, "tok", 400, "InvalidParameterValueException"},
		{"no token", "POST", "/v1/keys", `{}`, "", 401, "UnauthorizedException"},
		{"wrong token", "GET", "/v1/keys", "", "nope", 401, "UnauthorizedException"},
		{"delete with a wrong token", "DELETE", "/v1/keys/WISPAAAAAAAAAAAAAAAA", "", "nope", 401, "UnauthorizedException"},
		{"get one key", "GET", "/v1/keys/WISPAAAAAAAAAAAAAAAA", "", "tok", 404, "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			c.token = tt.token
			r := c.do(tt.method, tt.path, "application/json", []byte(tt.body))
			mustStatus(t, r, tt.status)
			if got := r.errType(); got != tt.wantType {
				t.Errorf("error type %q, want %q: %s", got, tt.wantType, r.body)
			}
		})
	}
	list, err := keys.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("bad calls made keys: %+v", list)
	}
}

func TestKeysAPIDisabled(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{AdminToken: "tok", Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	c := apiClient{t: t, base: srv.URL, token: "tok"}
	for _, call := range [][2]string{{"POST", "/v1/keys"}, {"GET", "/v1/keys"}, {"DELETE", "/v1/keys/WISPAAAAAAAAAAAAAAAA"}} {
		r := c.json(call[0], call[1], nil)
		mustStatus(t, r, http.StatusNotImplemented)
		if r.errType() != "ServiceException" {
			t.Errorf("%s %s: %s, want a ServiceException", call[0], call[1], r.body)
		}
	}
}
