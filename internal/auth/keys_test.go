package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// openStore starts an embedded JetStream in a temp dir.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return s
}

// openKeys opens Keys on js with the key file at keyFile.
func openKeys(t *testing.T, js jetstream.JetStream, keyFile string, now func() time.Time) *Keys {
	t.Helper()
	k, err := OpenKeys(context.Background(), js, KeysConfig{KeyFile: keyFile, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestKeysCreateAndSecret(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)

	key, err := k.Create(ctx, "ci deploys")
	if err != nil {
		t.Fatal(err)
	}
	if len(key.ID) != 20 || !strings.HasPrefix(key.ID, "WISP") || !validKeyID(key.ID) {
		t.Errorf("ID = %q, want WISP and 16 base32 characters", key.ID)
	}
	if len(key.Secret) != 40 {
		t.Errorf("secret is %d characters, want 40", len(key.Secret))
	}
	if strings.Trim(key.Secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("secret %q has characters outside base64url", key.Secret)
	}
	if key.Description != "ci deploys" || key.CreatedAt.IsZero() {
		t.Errorf("key = %+v, want the description and a creation time", key)
	}

	got, err := k.Secret(ctx, key.ID)
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if got != key.Secret {
		t.Errorf("Secret = %q, want %q", got, key.Secret)
	}

	// The bucket holds the secret sealed, not in clear or merely encoded.
	kv, err := s.JS.KeyValue(ctx, KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, key.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw := e.Value()
	for _, form := range []string{
		key.Secret,
		base64.StdEncoding.EncodeToString([]byte(key.Secret)),
		hex.EncodeToString([]byte(key.Secret)),
		key.Secret[:16],
	} {
		if bytes.Contains(raw, []byte(form)) {
			t.Errorf("the stored value %s contains the secret (as %q)", raw, form)
		}
	}
	if !bytes.Contains(raw, []byte("ci deploys")) {
		t.Errorf("the stored value %s does not hold the description", raw)
	}

	// A value moved to another id does not open: the id is sealed in.
	other := "WISP" + strings.Repeat("A", 16)
	if _, err := kv.Create(ctx, other, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Secret(ctx, other); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Secret of a copied value: err = %v, want %v", err, ErrUnknownKey)
	}
}

func TestKeysListHidesSecrets(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}
	k := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), clock)

	empty, err := k.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty == nil || len(empty) != 0 {
		t.Errorf("List of no keys = %#v, want an empty slice", empty)
	}

	var created []AccessKey
	for _, d := range []string{"first", "", "third"} {
		key, err := k.Create(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, key)
	}
	if err := k.Delete(ctx, created[1].ID); err != nil {
		t.Fatal(err)
	}

	got, err := k.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []AccessKey{
		{ID: created[0].ID, Description: "first", CreatedAt: created[0].CreatedAt},
		{ID: created[2].ID, Description: "third", CreatedAt: created[2].CreatedAt},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Secret != "" || got[i].Description != want[i].Description || !got[i].CreatedAt.Equal(want[i].CreatedAt) {
			t.Errorf("List[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range created {
		if bytes.Contains(b, []byte(c.Secret)) {
			t.Errorf("List's JSON %s shows a secret", b)
		}
	}
	if bytes.Contains(b, []byte("secret_access_key")) {
		t.Errorf("List's JSON %s has a secret_access_key field", b)
	}
}

// waitUnknown polls Secret until it fails with ErrUnknownKey, for at most a
// second.
func waitUnknown(t *testing.T, k *Keys, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		_, err := k.Secret(context.Background(), id)
		if errors.Is(err, ErrUnknownKey) {
			return
		}
		if err != nil {
			t.Fatalf("Secret: %v, want %v", err, ErrUnknownKey)
		}
		if time.Now().After(deadline) {
			t.Fatal("a deleted key still has a secret after a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKeysDelete(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	keyFile := filepath.Join(t.TempDir(), "keys.key")
	k1 := openKeys(t, s.JS, keyFile, nil)
	k2 := openKeys(t, s.JS, keyFile, nil) // another node, say

	key, err := k1.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := k1.Create(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Keys{k1, k2} {
		for range 2 { // the second answer comes from the cache
			if got, err := k.Secret(ctx, key.ID); err != nil || got != key.Secret {
				t.Fatalf("Secret = %q, %v; want the secret", got, err)
			}
		}
	}
	k2.mu.Lock()
	_, cached := k2.cache[key.ID]
	k2.mu.Unlock()
	if !cached {
		t.Fatal("the second Keys did not cache the secret; the test would not test the watch")
	}

	if err := k1.Delete(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := k1.Secret(ctx, key.ID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Secret right after Delete on the same Keys: err = %v, want %v", err, ErrUnknownKey)
	}
	waitUnknown(t, k2, key.ID)

	// The other key is untouched, on both.
	for _, k := range []*Keys{k1, k2} {
		if got, err := k.Secret(ctx, kept.ID); err != nil || got != kept.Secret {
			t.Errorf("Secret of the kept key = %q, %v; want its secret", got, err)
		}
	}

	for _, id := range []string{key.ID, "WISP" + strings.Repeat("Z", 16), "nope", "WISP.>", ""} {
		if err := k2.Delete(ctx, id); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Delete(%q): err = %v, want %v", id, err, ErrKeyNotFound)
		}
	}
}

func TestKeysSecretOfBadIDs(t *testing.T) {
	s := openStore(t)
	k := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)
	for _, id := range []string{
		"",
		"AKIAIOSFODNN7EXAMPLE",
		"WISP" + strings.Repeat("a", 16),
		"WISP" + strings.Repeat("A", 15),
		"WISP" + strings.Repeat("A", 17),
		"WISP" + strings.Repeat("1", 16),
		"WISP.AAAAAAAAAAAAAAA",
		"WISP*AAAAAAAAAAAAAAA",
		"WISP>AAAAAAAAAAAAAAA",
	} {
		if _, err := k.Secret(context.Background(), id); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Secret(%q): err = %v, want %v", id, err, ErrUnknownKey)
		}
	}
}

func TestKeysOtherKeyFile(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k1 := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)
	k2 := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)

	key, err := k1.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Secret(ctx, key.ID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Secret with another key file: err = %v, want %v", err, ErrUnknownKey)
	}
	// Listing and deleting need no decryption.
	list, err := k2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != key.ID {
		t.Errorf("List with another key file = %+v, want the key", list)
	}
}

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keys.key")

	k1 := openKeys(t, s.JS, path, nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the key file was not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("key file mode %v size %d, want -rw------- and 32 bytes", fi.Mode().Perm(), fi.Size())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := k1.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}

	// Opening again reuses the file: the secret still opens, the file is
	// unchanged.
	k2 := openKeys(t, s.JS, path, nil)
	if got, err := k2.Secret(ctx, key.ID); err != nil || got != key.Secret {
		t.Errorf("Secret after reopening = %q, %v; want the secret", got, err)
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("reopening rewrote the key file")
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("the key file's dir holds %d files, want only the key file", len(ents))
	}

	// The same key as hex digits, as `openssl rand -hex 32` writes it.
	hexPath := filepath.Join(dir, "hex.key")
	if err := os.WriteFile(hexPath, []byte(hex.EncodeToString(first)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k3 := openKeys(t, s.JS, hexPath, nil)
	if got, err := k3.Secret(ctx, key.ID); err != nil || got != key.Secret {
		t.Errorf("Secret with the key file in hex = %q, %v; want the secret", got, err)
	}

	for name, content := range map[string]string{
		"short":   "too short",
		"bad hex": strings.Repeat("zz", 32),
		"long":    strings.Repeat("a", 33),
		"empty":   "",
	} {
		bad := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeys(ctx, s.JS, KeysConfig{KeyFile: bad}); err == nil {
			t.Errorf("OpenKeys with a %s key file: no error", name)
		}
	}
	if _, err := OpenKeys(ctx, s.JS, KeysConfig{}); err == nil {
		t.Error("OpenKeys with no key file: no error")
	}
}

func TestKeysDescription(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)
	tests := []struct {
		name        string
		description string
		ok          bool
	}{
		{"empty", "", true},
		{"256 characters", strings.Repeat("é", 256), true},
		{"257 characters", strings.Repeat("a", 257), false},
		{"not UTF-8", "\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := k.Create(ctx, tt.description)
			if tt.ok {
				if err != nil || key.Description != tt.description {
					t.Errorf("Create: %+v, %v; want the description kept", key, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidDescription) {
				t.Errorf("Create: err = %v, want %v", err, ErrInvalidDescription)
			}
		})
	}
}

func TestKeysAfterClose(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)
	key, err := k.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Secret(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the watch nothing is cached, so a delete from elsewhere is
	// still seen at once.
	other := openKeys(t, s.JS, filepath.Join(t.TempDir(), "other.key"), nil)
	if got, err := k.Secret(ctx, key.ID); err != nil || got != key.Secret {
		t.Fatalf("Secret after Close = %q, %v; want the secret", got, err)
	}
	if err := other.Delete(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Secret(ctx, key.ID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Secret after Close and a delete: err = %v, want %v", err, ErrUnknownKey)
	}
}

// TestKeysLambdaClient signs with aws-sdk-go-v2's Lambda client and a
// created key pair, against a server that verifies with Keys.Secret.
func TestKeysLambdaClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := openStore(t)
	keys := openKeys(t, s.JS, filepath.Join(t.TempDir(), "keys.key"), nil)

	type seen struct {
		keyID string
		err   error
	}
	var (
		mu    sync.Mutex
		calls []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, verr := VerifySigV4(r, body, time.Now(), SigV4Scope{Region: "us-east-1", Service: "lambda"}, func(id string) (string, error) {
			return keys.Secret(r.Context(), id)
		})
		mu.Lock()
		calls = append(calls, seen{id, verr})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if verr != nil {
			w.Header().Set("X-Amzn-ErrorType", "UnrecognizedClientException")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"The security token included in the request is invalid."}`) //nolint:errcheck // the test reads the client's error
			return
		}
		io.WriteString(w, `{"ok":true}`) //nolint:errcheck // the test reads the client's answer
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", srv.URL)
	}

	invoke := func(key AccessKey) (seen, error) {
		t.Helper()
		mu.Lock()
		calls = nil
		mu.Unlock()
		c := lambda.New(lambda.Options{
			Region:           "us-east-1",
			Credentials:      credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
			BaseEndpoint:     aws.String(srv.URL),
			HTTPClient:       srv.Client(),
			RetryMaxAttempts: 1,
		})
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello"), Payload: []byte(`{"n":1}`)})
		if err == nil && string(out.Payload) != `{"ok":true}` {
			t.Errorf("Payload = %s, want {\"ok\":true}", out.Payload)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 1 {
			t.Fatalf("server saw %d requests, want 1", len(calls))
		}
		return calls[0], err
	}

	key, err := keys.Create(ctx, "sdk")
	if err != nil {
		t.Fatal(err)
	}
	got, err := invoke(key)
	if err != nil || got.err != nil {
		t.Fatalf("Invoke with a created key: %v (server: %v)", err, got.err)
	}
	if got.keyID != key.ID {
		t.Errorf("verified key id = %q, want %q", got.keyID, key.ID)
	}

	wrong := key
	wrong.Secret = strings.Repeat("x", 40)
	if got, err := invoke(wrong); err == nil || !errors.Is(got.err, ErrBadSignature) {
		t.Errorf("Invoke with a wrong secret: %v (server: %v), want %v", err, got.err, ErrBadSignature)
	}

	if err := keys.Delete(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := invoke(key); err == nil || !errors.Is(got.err, ErrUnknownKey) {
		t.Errorf("Invoke with a deleted key: %v (server: %v), want %v", err, got.err, ErrUnknownKey)
	}
}
