package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors the API maps to its error types.
var (
	ErrNotFound = errors.New("registry: not found")
	ErrExists   = errors.New("registry: already exists")
	ErrStale    = errors.New("registry: revision is not the current one")
)

// Bucket names in JetStream.
const (
	recordsBucket = "wisp_registry"
	codeBucket    = "wisp_code"
)

// Keys in the records bucket: fn.NAME, ver.NAME.N, alias.NAME.ALIAS.
func fnKey(name string) string           { return "fn." + name }
func verKey(name string, n int) string   { return "ver." + name + "." + strconv.Itoa(n) }
func aliasKey(name, alias string) string { return "alias." + name + "." + alias }

// Registry is the function registry of every node sharing one JetStream.
type Registry struct {
	kv        jetstream.KeyValue
	code      jetstream.ObjectStore
	now       func() time.Time
	log       *slog.Logger
	cache     *cache
	stopWatch context.CancelFunc
	watchDone chan struct{} // closed when the cache's watch has ended

	subMu sync.Mutex
	subs  map[*subscriber]struct{} // guarded by subMu
}

// Limits bound the registry's buckets; a write past one is refused. Zero
// fields take the defaults.
type Limits struct {
	// RecordBytes bounds the records (functions, versions, aliases);
	// default 256 MiB, some hundred thousand records.
	RecordBytes int64
	// CodeBytes bounds the code artifacts; default 64 GiB.
	CodeBytes int64
}

// Defaults of Limits.
const (
	DefaultRecordBytes = 256 << 20
	DefaultCodeBytes   = 64 << 30
)

// Open opens the registry's buckets, creating them on first use, or
// setting their limits.
func Open(ctx context.Context, js jetstream.JetStream, now func() time.Time, log *slog.Logger, lim Limits) (*Registry, error) {
	if lim.RecordBytes <= 0 {
		lim.RecordBytes = DefaultRecordBytes
	}
	if lim.CodeBytes <= 0 {
		lim.CodeBytes = DefaultCodeBytes
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: recordsBucket, Description: "wisp functions, versions and aliases",
		History: 1, Storage: jetstream.FileStorage, MaxBytes: lim.RecordBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", recordsBucket, err)
	}
	code, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: codeBucket, Description: "wisp code artifacts by sha256",
		Storage: jetstream.FileStorage, MaxBytes: lim.CodeBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", codeBucket, err)
	}
	if now == nil {
		now = time.Now
	}
	r := &Registry{kv: kv, code: code, now: now, log: log, cache: newCache(), watchDone: make(chan struct{}),
		subs: map[*subscriber]struct{}{}}
	// The watch outlives Open's ctx: it ends with Close.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stopWatch = cancel
	if err := r.watch(wctx); err != nil {
		cancel()
		return nil, err
	}
	return r, nil
}

// Close stops keeping the cache current.
func (r *Registry) Close() {
	r.stopWatch()
	<-r.watchDone
}

func notFound(kind, name string) error {
	return fmt.Errorf("%s %q not found: %w", kind, name, ErrNotFound)
}

func isMissing(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

func (r *Registry) getJSON(ctx context.Context, key string, v any) (uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("registry: decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// Get returns a function's $LATEST.
func (r *Registry) Get(ctx context.Context, name string) (Function, error) {
	var f Function
	if ValidName("function", name) != nil {
		return f, notFound("function", name)
	}
	rev, err := r.getJSON(ctx, fnKey(name), &f)
	if isMissing(err) {
		return f, notFound("function", name)
	}
	if err != nil {
		return f, err
	}
	f.Revision = rev
	return f, nil
}

// List returns up to limit functions by name, after marker, and the marker
// of the next page ("" on the last).
func (r *Registry) List(ctx context.Context, limit int, marker string) ([]Function, string, error) {
	names, err := r.keys(ctx, "fn.*", "fn.")
	if err != nil {
		return nil, "", err
	}
	slices.Sort(names)
	i, _ := slices.BinarySearch(names, marker)
	if i < len(names) && names[i] == marker {
		i++
	}
	names = names[i:]
	next := ""
	if len(names) > limit {
		names = names[:limit]
		next = names[limit-1]
	}
	fns := make([]Function, 0, len(names))
	for _, n := range names {
		f, err := r.Get(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since we listed
		}
		if err != nil {
			return nil, "", err
		}
		fns = append(fns, f)
	}
	return fns, next, nil
}

// keys lists the keys matching filter, with prefix cut off.
func (r *Registry) keys(ctx context.Context, filter, prefix string) ([]string, error) {
	l, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("registry: list %s: %w", filter, err)
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, strings.TrimPrefix(k, prefix))
	}
	return out, nil
}

// Create makes a function from cfg with the staged code.
func (r *Registry) Create(ctx context.Context, cfg Config, code *Staged) (Function, error) {
	var f Function
	if err := apply(&f, cfg, true); err != nil {
		return Function{}, err
	}
	if code == nil {
		return Function{}, invalid("code is required to create a function")
	}
	if err := r.putCode(ctx, code); err != nil {
		return Function{}, err
	}
	// Versions and aliases a failed delete left behind must not be
	// adopted by a new function of the same name (nor satisfy its
	// schedules' qualifiers).
	if _, err := r.Get(ctx, f.Name); errors.Is(err, ErrNotFound) {
		if err := r.purgeChildren(ctx, f.Name, ""); err != nil {
			return Function{}, err
		}
	}
	if err := r.checkNamed(ctx, f, cfg); err != nil {
		r.dropCodeIfUnused(ctx, code.SHA256)
		return Function{}, err
	}
	f.CodeSHA256, f.CodeSize = code.SHA256, code.Size
	f.CreatedAt = r.now().UTC()
	f.UpdatedAt = f.CreatedAt
	data, err := json.Marshal(f)
	if err != nil {
		return Function{}, err
	}
	rev, err := r.kv.Create(ctx, fnKey(f.Name), data)
	if err != nil {
		r.dropCodeIfUnused(ctx, code.SHA256)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Function{}, fmt.Errorf("function %q: %w", f.Name, ErrExists)
		}
		return Function{}, fmt.Errorf("registry: create %s: %w", f.Name, err)
	}
	r.cache.apply(fnKey(f.Name), rev, false, data, r.log)
	f.Revision = rev
	return f, nil
}

// UpdateConfig applies cfg to a function. ifRevision, when not 0, must be
// the function's current revision.
func (r *Registry) UpdateConfig(ctx context.Context, name string, cfg Config, ifRevision uint64) (Function, error) {
	return r.update(ctx, name, ifRevision, func(f *Function) error {
		if err := apply(f, cfg, false); err != nil {
			return err
		}
		return r.checkNamed(ctx, *f, cfg)
	})
}

// UpdateCode points a function at the staged code.
func (r *Registry) UpdateCode(ctx context.Context, name string, code *Staged, ifRevision uint64) (Function, error) {
	var old string
	f, err := r.update(ctx, name, ifRevision, func(f *Function) error {
		if err := r.putCode(ctx, code); err != nil {
			return err
		}
		old = f.CodeSHA256
		f.CodeSHA256, f.CodeSize = code.SHA256, code.Size
		return nil
	})
	if err != nil {
		r.dropCodeIfUnused(ctx, code.SHA256)
		return f, err
	}
	if old != code.SHA256 {
		r.dropCodeIfUnused(ctx, old)
	}
	return f, nil
}

// update reads, changes and writes a function under optimistic concurrency:
// a write that raced another is retried unless the caller named a revision.
// A change that leaves the record as it was is no write: the revision and
// UpdatedAt stay, so a caller repeating an update (or sending null or {})
// does not make everyone else's If-Match stale.
func (r *Registry) update(ctx context.Context, name string, ifRevision uint64, change func(*Function) error) (Function, error) {
	for {
		f, err := r.Get(ctx, name)
		if err != nil {
			return Function{}, err
		}
		if ifRevision != 0 && ifRevision != f.Revision {
			return Function{}, fmt.Errorf("function %q is at revision %d, not %d: %w", name, f.Revision, ifRevision, ErrStale)
		}
		cur, rev := f, f.Revision
		f.Revision = 0
		before, err := json.Marshal(f)
		if err != nil {
			return Function{}, err
		}
		if err := change(&f); err != nil {
			return Function{}, err
		}
		f.Revision = 0
		data, err := json.Marshal(f)
		if err != nil {
			return Function{}, err
		}
		if bytes.Equal(data, before) {
			return cur, nil
		}
		f.UpdatedAt = r.now().UTC()
		if data, err = json.Marshal(f); err != nil {
			return Function{}, err
		}
		newRev, err := r.kv.Update(ctx, fnKey(name), data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			if ifRevision != 0 {
				return Function{}, fmt.Errorf("function %q changed meanwhile: %w", name, ErrStale)
			}
			continue
		}
		if err != nil {
			return Function{}, fmt.Errorf("registry: update %s: %w", name, err)
		}
		r.cache.apply(fnKey(name), newRev, false, data, r.log)
		f.Revision = newRev
		return f, nil
	}
}

// Delete removes a function with its versions, aliases, and the code no
// other function or version uses.
func (r *Registry) Delete(ctx context.Context, name string, ifRevision uint64) error {
	f, err := r.Get(ctx, name)
	if err != nil {
		return err
	}
	if ifRevision != 0 && ifRevision != f.Revision {
		return fmt.Errorf("function %q is at revision %d, not %d: %w", name, f.Revision, ifRevision, ErrStale)
	}
	// The function's own record goes first, conditionally, so a concurrent
	// update either lands before (and is deleted) or fails as stale.
	// Once the record is gone the rest must go too, even if the caller
	// leaves.
	ctx = context.WithoutCancel(ctx)
	if err := r.kv.Delete(ctx, fnKey(name), jetstream.LastRevision(f.Revision)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("function %q changed meanwhile: %w", name, ErrStale)
		}
		return fmt.Errorf("registry: delete %s: %w", name, err)
	}
	r.cache.forget(fnKey(name))
	return r.purgeChildren(ctx, name, f.CodeSHA256)
}

// purgeChildren deletes a deleted function's versions and aliases and
// drops the code they alone used.
func (r *Registry) purgeChildren(ctx context.Context, name, latestSHA string) error {
	shas := map[string]bool{latestSHA: true}
	vers, err := r.ListVersions(ctx, name)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(vers))
	for _, v := range vers {
		shas[v.Function.CodeSHA256] = true
		keys = append(keys, verKey(name, v.Version))
	}
	aliases, err := r.keys(ctx, "alias."+name+".*", "")
	if err != nil {
		return err
	}
	for _, k := range append(keys, aliases...) {
		if err := r.kv.Delete(ctx, k); err != nil && !isMissing(err) {
			return fmt.Errorf("registry: delete %s: %w", k, err)
		}
		r.cache.forget(k)
	}
	for sha := range shas {
		r.dropCodeIfUnused(ctx, sha)
	}
	return nil
}

// Publish snapshots $LATEST as the next version. If $LATEST equals the last
// version, that version is returned with created false.
func (r *Registry) Publish(ctx context.Context, name, description string, ifRevision uint64) (Version, bool, error) {
	if len(description) > MaxDescription {
		return Version{}, false, invalid("description is longer than %d characters", MaxDescription)
	}
	for {
		f, err := r.Get(ctx, name)
		if err != nil {
			return Version{}, false, err
		}
		if ifRevision != 0 && ifRevision != f.Revision {
			return Version{}, false, fmt.Errorf("function %q is at revision %d, not %d: %w", name, f.Revision, ifRevision, ErrStale)
		}
		vers, err := r.ListVersions(ctx, name)
		if err != nil {
			return Version{}, false, err
		}
		n := 1
		if len(vers) > 0 {
			last := vers[len(vers)-1]
			if sameRunnable(last.Function, f) {
				return last, false, nil
			}
			n = last.Version + 1
		}
		v := Version{Version: n, Function: f, CreatedAt: r.now().UTC(), Description: description}
		data, err := json.Marshal(v)
		if err != nil {
			return Version{}, false, err
		}
		rev, err := r.kv.Create(ctx, verKey(name, n), data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another publish took n
		}
		if err != nil {
			return Version{}, false, fmt.Errorf("registry: publish %s: %w", name, err)
		}
		r.cache.apply(verKey(name, n), rev, false, data, r.log)
		// A delete that raced this publish would leave an orphan version.
		if _, err := r.Get(ctx, name); errors.Is(err, ErrNotFound) {
			if derr := r.kv.Delete(ctx, verKey(name, n)); derr != nil {
				r.log.Warn("registry: orphan version left", "function", name, "version", n, "err", derr)
			}
			return Version{}, false, err
		}
		return v, true, nil
	}
}

// sameRunnable says whether two snapshots run the same code with the same
// config, ignoring bookkeeping.
func sameRunnable(a, b Function) bool {
	a.CreatedAt, a.UpdatedAt, a.Revision, a.Description = time.Time{}, time.Time{}, 0, ""
	b.CreatedAt, b.UpdatedAt, b.Revision, b.Description = time.Time{}, time.Time{}, 0, ""
	if len(a.Env) == 0 && len(b.Env) == 0 {
		a.Env, b.Env = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// ListVersions returns a function's versions, oldest first.
func (r *Registry) ListVersions(ctx context.Context, name string) ([]Version, error) {
	ks, err := r.keys(ctx, "ver."+name+".*", "ver."+name+".")
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, k := range ks {
		if n, err := strconv.Atoi(k); err == nil {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	vers := make([]Version, 0, len(ns))
	for _, n := range ns {
		var v Version
		_, err := r.getJSON(ctx, verKey(name, n), &v)
		if isMissing(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		vers = append(vers, v)
	}
	return vers, nil
}

// GetVersion returns version n of a function.
func (r *Registry) GetVersion(ctx context.Context, name string, n int) (Version, error) {
	var v Version
	if ValidName("function", name) != nil || n < 1 {
		return v, notFound("version", fmt.Sprintf("%s:%d", name, n))
	}
	_, err := r.getJSON(ctx, verKey(name, n), &v)
	if isMissing(err) {
		return v, notFound("version", fmt.Sprintf("%s:%d", name, n))
	}
	return v, err
}

// PutAlias creates or replaces an alias; created says which.
func (r *Registry) PutAlias(ctx context.Context, fn string, a Alias, ifRevision uint64) (Alias, bool, error) {
	a.Function = fn
	if err := checkAlias(a); err != nil {
		return Alias{}, false, err
	}
	if _, err := r.Get(ctx, fn); err != nil {
		return Alias{}, false, err
	}
	for _, n := range []int{a.Version, a.AdditionalVersion} {
		if n == 0 {
			continue
		}
		if _, err := r.GetVersion(ctx, fn, n); errors.Is(err, ErrNotFound) {
			return Alias{}, false, invalid("version %d of %q does not exist", n, fn)
		} else if err != nil {
			return Alias{}, false, err
		}
	}
	a.UpdatedAt = r.now().UTC()
	a.Revision = 0
	data, err := json.Marshal(a)
	if err != nil {
		return Alias{}, false, err
	}
	key := aliasKey(fn, a.Name)
	cur, err := r.GetAlias(ctx, fn, a.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		if ifRevision != 0 {
			return Alias{}, false, fmt.Errorf("alias %q does not exist at revision %d: %w", a.Name, ifRevision, ErrStale)
		}
		a.Revision, err = r.kv.Create(ctx, key, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Alias{}, false, fmt.Errorf("alias %q was created meanwhile: %w", a.Name, ErrStale)
		}
		if err != nil {
			return Alias{}, false, fmt.Errorf("registry: put alias %s: %w", key, err)
		}
		r.cache.apply(key, a.Revision, false, data, r.log)
		return a, true, nil
	case err != nil:
		return Alias{}, false, err
	}
	if ifRevision != 0 && ifRevision != cur.Revision {
		return Alias{}, false, fmt.Errorf("alias %q is at revision %d, not %d: %w", a.Name, cur.Revision, ifRevision, ErrStale)
	}
	a.Revision, err = r.kv.Update(ctx, key, data, cur.Revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return Alias{}, false, fmt.Errorf("alias %q changed meanwhile: %w", a.Name, ErrStale)
	}
	if err != nil {
		return Alias{}, false, fmt.Errorf("registry: put alias %s: %w", key, err)
	}
	r.cache.apply(key, a.Revision, false, data, r.log)
	return a, false, nil
}

// GetAlias returns one alias of a function.
func (r *Registry) GetAlias(ctx context.Context, fn, name string) (Alias, error) {
	var a Alias
	if ValidName("function", fn) != nil || ValidName("alias", name) != nil {
		return a, notFound("alias", fn+":"+name)
	}
	rev, err := r.getJSON(ctx, aliasKey(fn, name), &a)
	if isMissing(err) {
		return a, notFound("alias", fn+":"+name)
	}
	if err != nil {
		return a, err
	}
	a.Revision = rev
	return a, nil
}

// ListAliases returns a function's aliases by name.
func (r *Registry) ListAliases(ctx context.Context, fn string) ([]Alias, error) {
	if _, err := r.Get(ctx, fn); err != nil {
		return nil, err
	}
	names, err := r.keys(ctx, "alias."+fn+".*", "alias."+fn+".")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]Alias, 0, len(names))
	for _, n := range names {
		a, err := r.GetAlias(ctx, fn, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// DeleteAlias removes an alias.
func (r *Registry) DeleteAlias(ctx context.Context, fn, name string, ifRevision uint64) error {
	a, err := r.GetAlias(ctx, fn, name)
	if err != nil {
		return err
	}
	if ifRevision != 0 && ifRevision != a.Revision {
		return fmt.Errorf("alias %q is at revision %d, not %d: %w", name, a.Revision, ifRevision, ErrStale)
	}
	err = r.kv.Delete(ctx, aliasKey(fn, name), jetstream.LastRevision(a.Revision))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("alias %q changed meanwhile: %w", name, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("registry: delete alias %s: %w", name, err)
	}
	r.cache.forget(aliasKey(fn, name))
	return nil
}

// Code opens the code artifact with the given sha256.
func (r *Registry) Code(ctx context.Context, sha string) (io.ReadCloser, error) {
	obj, err := r.code.Get(ctx, sha)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, notFound("code", sha)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: code %s: %w", sha, err)
	}
	return obj, nil
}

// putCode stores staged code unless the same code is stored already.
func (r *Registry) putCode(ctx context.Context, s *Staged) error {
	if _, err := r.code.GetInfo(ctx, s.SHA256); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("registry: code %s: %w", s.SHA256, err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := r.code.Put(ctx, jetstream.ObjectMeta{Name: s.SHA256}, s.file); err != nil {
		return fmt.Errorf("registry: store code %s: %w", s.SHA256, err)
	}
	return nil
}

// dropCodeIfUnused deletes a code artifact that no function or version
// points at. It is best effort: a leftover artifact wastes space, nothing
// more, while deleting a used one would break a function, so any doubt
// keeps it.
func (r *Registry) dropCodeIfUnused(ctx context.Context, sha string) {
	if sha == "" {
		return
	}
	l, err := r.kv.ListKeysFiltered(ctx, "fn.*", "ver.>")
	if err != nil {
		r.log.Warn("registry: code kept, cannot list users", "sha256", sha, "err", err)
		return
	}
	used := false
	for k := range l.Keys() {
		if used {
			continue // drain the lister
		}
		e, err := r.kv.Get(ctx, k)
		if isMissing(err) {
			continue
		}
		if err != nil {
			r.log.Warn("registry: code kept, cannot read a user", "sha256", sha, "key", k, "err", err)
			used = true
			continue
		}
		used = bytes.Contains(e.Value(), []byte(sha))
	}
	if used {
		return
	}
	if err := r.code.Delete(ctx, sha); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		r.log.Warn("registry: drop unused code", "sha256", sha, "err", err)
	}
}
