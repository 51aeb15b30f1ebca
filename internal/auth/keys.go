package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/internal/store"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
)

// Access key errors.
var (
	// ErrKeyNotFound is Delete's answer for a key that does not exist.
	ErrKeyNotFound = errors.New("auth: access key not found")
	// ErrInvalidDescription is Create's answer for a description that is not
	// UTF-8 or longer than MaxKeyDescription characters.
	ErrInvalidDescription = errors.New("auth: invalid access key description")
)

const (
	// KeysBucket is the KV bucket access keys live in, one entry per key
	// under its access key id.
	KeysBucket = "wisp_keys"
	// MaxKeyDescription is how many characters a key's description may have.
	MaxKeyDescription = 256

	keyIDPrefix = "WISP"
	// keyIDRandom random bytes make 16 base32 characters: the id is 20
	// characters long, as AWS's AKIA… ids are.
	keyIDRandom = 10
	keyIDLen    = len(keyIDPrefix) + keyIDRandom*8/5
	// secretRandom random bytes make a 40-character secret, as long as
	// AWS's: 240 bits.
	secretRandom = 30
	// sealKeyLen is the key file's size: an AES-256 key.
	sealKeyLen = 32

	// secretCacheTTL bounds how long a cached secret is used without a look
	// at the bucket. The watch is what makes a deleted key stop working
	// (within milliseconds); the TTL only bounds the damage of a watch that
	// stalls without closing, as in a partition from NATS.
	secretCacheTTL = time.Minute
)

// keyIDEncoding is base32 without padding, upper-case: the alphabet of AWS's
// key ids, safe in a KV key, a header and a shell.
var keyIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// AccessKey is an access key pair: the id that signs a request and, only in
// Create's answer, the secret that signs it.
type AccessKey = apitype.AccessKey

// KeysConfig is what Keys needs. KeyFile is required.
type KeysConfig struct {
	// KeyFile is the path of the node's 32-byte key that seals secrets in
	// the bucket. It is created (mode 0600, random) when missing. It may hold
	// the 32 bytes raw or as 64 hex digits.
	//
	// In a cluster, every node needs the same key file to use access keys
	// created on another node: a node that cannot decrypt a key's secret
	// treats the key as unknown. Copy the file from the first node to the
	// others before they start.
	KeyFile string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Keys stores access key pairs in a KV bucket, their secrets sealed with
// AES-256-GCM under the node's key file, so that the bucket (and a copy of
// the JetStream data) does not give them away. SigV4 needs the secret
// itself, not a hash of it, so the secret is encrypted, not hashed.
//
// Secret lookups are cached; a watch on the bucket drops a cached secret as
// soon as its key changes on any node, so a deleted key stops verifying
// within milliseconds everywhere.
type Keys struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD
	log  *slog.Logger
	now  func() time.Time

	stopWatch context.CancelFunc
	watchDone chan struct{} // closed when the watch goroutine ends

	mu sync.Mutex
	// cache holds secrets by access key id; guarded by mu.
	cache map[string]cachedSecret
	// gen counts the bucket changes the watch has seen; guarded by mu. A
	// lookup caches what it read only if gen did not move meanwhile, so a
	// change seen during the read is never overwritten by the older value.
	gen uint64
	// watching is whether the watch still runs; guarded by mu. Without it
	// nothing is cached.
	watching bool
}

type cachedSecret struct {
	secret string
	until  time.Time
}

// storedKey is a key's KV value. The secret is sealed with AES-256-GCM, a
// random nonce and the access key id as additional data, so a sealed secret
// moved to another id does not open.
type storedKey struct {
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Nonce       []byte    `json:"nonce"`
	Sealed      []byte    `json:"sealed_secret"`
}

// watchLoadTimeout bounds how long opening waits for the watch of the
// bucket to catch up, as the registry's does.
const watchLoadTimeout = 30 * time.Second

// OpenKeys opens (creating if need be) the key file and the keys bucket, and
// starts watching the bucket. Close stops the watch.
func OpenKeys(ctx context.Context, js jetstream.JetStream, cfg KeysConfig) (*Keys, error) {
	if cfg.KeyFile == "" {
		return nil, errors.New("auth: access keys need a key file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sealKey, err := loadKeyFile(cfg.KeyFile, cfg.Logger)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", cfg.KeyFile, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", cfg.KeyFile, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KeysBucket, Description: "wisp access keys (secrets sealed with AES-256-GCM)",
		History: 1, Storage: jetstream.FileStorage,
		// Some tens of thousands of keys; a write past it is refused.
		MaxBytes: 16 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: open %s: %w", KeysBucket, err)
	}
	k := &Keys{kv: kv, aead: aead, log: cfg.Logger, now: cfg.Now,
		cache: map[string]cachedSecret{}, watchDone: make(chan struct{})}

	// The watch outlives ctx, which only bounds opening; Close ends it.
	// Nothing is cached until it has caught up, which opening waits for.
	watchCtx, stop := context.WithCancel(context.Background())
	k.stopWatch = stop
	ready := make(chan struct{})
	var once sync.Once
	caughtUp := func() {
		k.caughtUp()
		once.Do(func() { close(ready) })
	}
	go func() {
		defer close(k.watchDone)
		store.FollowWatch(watchCtx, kv, store.Watch{Apply: k.changed, CaughtUp: caughtUp, Lost: k.lost}, k.log)
		k.stopCaching()
	}()
	select {
	case <-ready:
		return k, nil
	case <-ctx.Done():
		k.Close() //nolint:errcheck // it only stops the watch
		return nil, fmt.Errorf("auth: watch %s: %w", KeysBucket, ctx.Err())
	case <-time.After(watchLoadTimeout):
		k.Close() //nolint:errcheck // as above
		return nil, fmt.Errorf("auth: the watch of %s did not catch up within %v", KeysBucket, watchLoadTimeout)
	}
}

// Close stops the watch. Secret, Create, List and Delete keep working,
// without the cache.
func (k *Keys) Close() error {
	k.stopWatch()
	<-k.watchDone
	return nil
}

// changed drops the cached secret of a key that changed.
func (k *Keys) changed(e jetstream.KeyValueEntry) {
	k.mu.Lock()
	k.gen++
	delete(k.cache, e.Key())
	k.mu.Unlock()
}

// caughtUp starts the caching: the watch sees every change from now on.
func (k *Keys) caughtUp() {
	k.mu.Lock()
	k.watching = true
	k.mu.Unlock()
}

// lost stops the caching while the watch is down: a key deleted meanwhile
// must not stay usable from the cache.
func (k *Keys) lost() {
	k.log.Warn("access keys: the bucket watch ended; secrets are not cached until it is back")
	k.stopCaching()
}

// stopCaching drops the cached secrets and caches none until the watch
// has caught up again.
func (k *Keys) stopCaching() {
	k.mu.Lock()
	k.watching = false
	k.gen++
	clear(k.cache)
	k.mu.Unlock()
}

// Create makes a new key pair. Its answer is the only place the secret is
// ever shown.
func (k *Keys) Create(ctx context.Context, description string) (AccessKey, error) {
	if !utf8.ValidString(description) || utf8.RuneCountInString(description) > MaxKeyDescription {
		return AccessKey{}, fmt.Errorf("%w: want UTF-8 of at most %d characters", ErrInvalidDescription, MaxKeyDescription)
	}
	key := AccessKey{
		Secret:      newSecret(),
		Description: description,
		CreatedAt:   k.now().UTC().Truncate(time.Millisecond),
	}
	// 80 random bits do not collide; Create refuses an existing id anyway,
	// so an existing key is never overwritten.
	for attempt := 0; ; attempt++ {
		key.ID = newKeyID()
		value, err := k.seal(key)
		if err != nil {
			return AccessKey{}, err
		}
		_, err = k.kv.Create(ctx, key.ID, value)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt == 2 {
			return AccessKey{}, fmt.Errorf("auth: store access key: %w", err)
		}
	}
	k.log.Info("access key created", "access_key_id", key.ID)
	return key, nil
}

// List returns every key, oldest first, without secrets.
func (k *Keys) List(ctx context.Context) ([]AccessKey, error) {
	w, err := k.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("auth: list access keys: %w", err)
	}
	defer w.Stop() //nolint:errcheck // nothing is left to read
	keys := []AccessKey{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("auth: list access keys: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("auth: list access keys: the watch closed")
			}
			if e == nil { // all current entries seen
				// The watch gives entries in the order they were
				// written: a stable sort keeps it for keys made in
				// the same instant.
				slices.SortStableFunc(keys, func(a, b AccessKey) int {
					return a.CreatedAt.Compare(b.CreatedAt)
				})
				return keys, nil
			}
			var s storedKey
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				k.log.Warn("access keys: unreadable entry", "access_key_id", e.Key(), "err", err)
				continue
			}
			keys = append(keys, AccessKey{ID: e.Key(), Description: s.Description, CreatedAt: s.CreatedAt})
		}
	}
}

// Delete deletes a key; requests signed with it fail from then on, on every
// node. An unknown id is ErrKeyNotFound.
func (k *Keys) Delete(ctx context.Context, id string) error {
	if !validKeyID(id) {
		return fmt.Errorf("%q: %w", id, ErrKeyNotFound)
	}
	e, err := k.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s: %w", id, ErrKeyNotFound)
	}
	if err != nil {
		return fmt.Errorf("auth: delete access key %s: %w", id, err)
	}
	// Purge, not Delete: no revision of the sealed secret is kept. Ids are
	// never reused, so a changed revision means someone deleted it first.
	err = k.kv.Purge(ctx, id, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("%s: %w", id, ErrKeyNotFound)
	}
	if err != nil {
		return fmt.Errorf("auth: delete access key %s: %w", id, err)
	}
	// Do not wait for the watch on this node.
	k.mu.Lock()
	k.gen++
	delete(k.cache, id)
	k.mu.Unlock()
	k.log.Info("access key deleted", "access_key_id", id)
	return nil
}

// Secret returns the secret of an access key, for VerifySigV4. A key that
// does not exist, was deleted, or whose secret this node cannot decrypt
// (another key file) is an error wrapping ErrUnknownKey; other errors are
// the store's.
func (k *Keys) Secret(ctx context.Context, id string) (string, error) {
	if !validKeyID(id) {
		return "", fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[id]
	gen, watching := k.gen, k.watching
	k.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.secret, nil
	}

	e, err := k.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("%w: %s", ErrUnknownKey, id)
	}
	if err != nil {
		return "", fmt.Errorf("auth: look up access key %s: %w", id, err)
	}
	secret, err := k.open(id, e.Value())
	if err != nil {
		// Not an attacker's doing: only the admin writes the bucket. Most
		// likely another node's key file sealed it.
		k.log.Warn("access key cannot be decrypted with this node's key file; in a cluster every node needs the same key file",
			"access_key_id", id, "err", err)
		return "", fmt.Errorf("%w: %s", ErrUnknownKey, id)
	}

	if watching {
		k.mu.Lock()
		if k.gen == gen && k.watching {
			k.cache[id] = cachedSecret{secret: secret, until: now.Add(secretCacheTTL)}
		}
		k.mu.Unlock()
	}
	return secret, nil
}

// seal is key's KV value, its secret encrypted.
func (k *Keys) seal(key AccessKey) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	b, err := json.Marshal(storedKey{
		Description: key.Description,
		CreatedAt:   key.CreatedAt,
		Nonce:       nonce,
		Sealed:      k.aead.Seal(nil, nonce, []byte(key.Secret), []byte(key.ID)),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: encode access key: %w", err)
	}
	return b, nil
}

// open decrypts the secret in a KV value stored under id.
func (k *Keys) open(id string, value []byte) (string, error) {
	var s storedKey
	if err := json.Unmarshal(value, &s); err != nil {
		return "", fmt.Errorf("unreadable entry: %w", err)
	}
	if len(s.Nonce) != k.aead.NonceSize() {
		return "", fmt.Errorf("nonce is %d bytes, want %d", len(s.Nonce), k.aead.NonceSize())
	}
	secret, err := k.aead.Open(nil, s.Nonce, s.Sealed, []byte(id))
	if err != nil {
		return "", err
	}
	return string(secret), nil
}

func newKeyID() string {
	b := make([]byte, keyIDRandom)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	return keyIDPrefix + keyIDEncoding.EncodeToString(b)
}

// newSecret is 40 characters of URL-safe base64: letters, digits, - and _.
func newSecret() string {
	b := make([]byte, secretRandom)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validKeyID reports whether id could be one Create made. Ids come from
// requests, so anything else is refused before it becomes a KV key.
func validKeyID(id string) bool {
	rest, ok := strings.CutPrefix(id, keyIDPrefix)
	if !ok || len(id) != keyIDLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// loadKeyFile reads the sealing key at path, creating it if it is missing.
func loadKeyFile(path string, log *slog.Logger) ([]byte, error) {
	key, err := readKeyFile(path, log)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: key file: %w", err)
	}
	key = make([]byte, sealKeyLen)
	rand.Read(key) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	// Write a temp file and link it in place: the key file appears whole or
	// not at all, and a node starting at the same time cannot overwrite it.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyfile-*")
	if err != nil {
		return nil, fmt.Errorf("auth: create key file: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // linked or not, the temp name goes
	if err := writeAndClose(tmp, key); err != nil {
		return nil, fmt.Errorf("auth: create key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readKeyFile(path, log) // someone else made it first
	} else if err != nil {
		return nil, fmt.Errorf("auth: create key file: %w", err)
	}
	log.Info("access key file created", "file", path)
	return key, nil
}

func writeAndClose(f *os.File, b []byte) error {
	// CreateTemp made it 0600; say so in case that ever changes.
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readKeyFile(path string, log *slog.Logger) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("access key file is readable by others; it should be mode 0600", "file", path, "mode", fi.Mode().Perm())
	}
	if len(b) == sealKeyLen {
		return b, nil
	}
	if h := strings.TrimSpace(string(b)); len(h) == 2*sealKeyLen {
		if key, err := hex.DecodeString(h); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("auth: key file %s must hold %d bytes, raw or as %d hex digits", path, sealKeyLen, 2*sealKeyLen)
}
