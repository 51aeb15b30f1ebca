package registry

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/store"
)

// newRegistry opens a registry on an embedded NATS of its own, in a temp
// dir: no node, no HTTP, no invoker.
func newRegistry(t *testing.T) *Registry {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return openRegistry(t, st)
}

// stage stages an archive whose index.js is body: a different body is
// different code.
func stage(t *testing.T, body string) *Staged {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("index.js")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body)) //nolint:errcheck // into a buffer
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Stage(&buf, t.TempDir(), archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// create makes a nodejs function name running body.
func create(t *testing.T, r *Registry, name, body string) Function {
	t.Helper()
	rt, h := "nodejs", "index.handler"
	f, err := r.Create(context.Background(), Config{Name: name, Runtime: &rt, Handler: &h}, stage(t, body))
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return f
}

func setTimeout(t *testing.T, r *Registry, name string, seconds int) Function {
	t.Helper()
	f, err := r.UpdateConfig(context.Background(), name, Config{Timeout: &seconds}, 0)
	if err != nil {
		t.Fatalf("set timeout of %s: %v", name, err)
	}
	return f
}

func publish(t *testing.T, r *Registry, name string) Version {
	t.Helper()
	v, _, err := r.Publish(context.Background(), name, "", 0)
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return v
}

func putAlias(t *testing.T, r *Registry, a Alias) Alias {
	t.Helper()
	got, _, err := r.PutAlias(context.Background(), "f", a, 0)
	if err != nil {
		t.Fatalf("put alias %s: %v", a.Name, err)
	}
	return got
}

func isValidation(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve)
}

// Publish snapshots $LATEST as versions 1, 2, … in order; publishing what
// the last version already runs makes no version; a version keeps the
// config it was published with when $LATEST changes.
func TestPublishNumbersVersions(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")

	v1, created, err := r.Publish(ctx, "f", "first", 0)
	if err != nil || !created || v1.Version != 1 || v1.Description != "first" {
		t.Fatalf("first publish = version %d created %v (%v), want version 1 created", v1.Version, created, err)
	}
	again, created, err := r.Publish(ctx, "f", "again", 0)
	if err != nil || created || again.Version != 1 {
		t.Errorf("publishing an unchanged $LATEST = version %d created %v (%v), want version 1 not created", again.Version, created, err)
	}
	d := "a new description runs the same"
	if _, err := r.UpdateConfig(ctx, "f", Config{Description: &d}, 0); err != nil {
		t.Fatal(err)
	}
	if v, created, err := r.Publish(ctx, "f", "", 0); err != nil || created || v.Version != 1 {
		t.Errorf("publishing after a description change = version %d created %v (%v), want version 1 not created", v.Version, created, err)
	}
	setTimeout(t, r, "f", 30)
	if v := publish(t, r, "f"); v.Version != 2 || v.Function.Timeout != 30 {
		t.Errorf("publish after a config change = version %d with timeout %d, want version 2 with 30", v.Version, v.Function.Timeout)
	}
	if _, err := r.UpdateCode(ctx, "f", stage(t, "exports.handler = async () => 3;"), 0); err != nil {
		t.Fatal(err)
	}
	if v := publish(t, r, "f"); v.Version != 3 {
		t.Errorf("publish after a code change = version %d, want 3", v.Version)
	}

	setTimeout(t, r, "f", 60)
	got, err := r.GetVersion(ctx, "f", 1)
	if err != nil || got.Function.Timeout != DefaultTimeout {
		t.Errorf("version 1 after $LATEST changed: timeout %d (%v), want %d as published", got.Function.Timeout, err, DefaultTimeout)
	}
	vers, err := r.ListVersions(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, v := range vers {
		ns = append(ns, v.Version)
	}
	if len(ns) != 3 || ns[0] != 1 || ns[1] != 2 || ns[2] != 3 {
		t.Errorf("versions %v, want [1 2 3]", ns)
	}

	if _, _, err := r.Publish(ctx, "nope", "", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("publishing a missing function: %v, want ErrNotFound", err)
	}
	if _, _, err := r.Publish(ctx, "f", strings.Repeat("d", MaxDescription+1), 0); !isValidation(err) {
		t.Errorf("publishing with a description too long: %v, want a ValidationError", err)
	}
	if _, err := r.GetVersion(ctx, "f", 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("version 4: %v, want ErrNotFound", err)
	}
}

// Concurrent publishes of one change make one version between them, and
// concurrent publishes of different functions number each on its own.
func TestConcurrentPublishesTakeOneNumberEach(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")
	var wg sync.WaitGroup
	vers := make([]int, 8)
	errs := make([]error, 8)
	for i := range vers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := r.Publish(ctx, "f", "", 0)
			vers[i], errs[i] = v.Version, err
		}()
	}
	wg.Wait()
	for i := range vers {
		if errs[i] != nil || vers[i] != 1 {
			t.Errorf("publish %d = version %d (%v), want version 1", i, vers[i], errs[i])
		}
	}
	if all, err := r.ListVersions(ctx, "f"); err != nil || len(all) != 1 {
		t.Errorf("%d versions (%v), want 1", len(all), err)
	}
}

// Resolve answers each qualifier from the cache: empty and $LATEST the
// head, a number that version, an alias its version; anything else is
// not found. What runs under one key is one thing: a new revision of
// $LATEST or another version has another key.
func TestResolveQualifiers(t *testing.T) {
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")
	publish(t, r, "f")
	setTimeout(t, r, "f", 20)
	publish(t, r, "f")
	latest := setTimeout(t, r, "f", 40)
	putAlias(t, r, Alias{Name: "live", Version: 1})

	for _, tc := range []struct {
		qualifier   string
		wantVersion string
		wantTimeout int
	}{
		{"", Latest, 40},
		{Latest, Latest, 40},
		{"1", "1", DefaultTimeout},
		{"2", "2", 20},
		{"live", "1", DefaultTimeout},
	} {
		got, err := r.Resolve("f", tc.qualifier, nil)
		if err != nil {
			t.Errorf("Resolve(f, %q): %v", tc.qualifier, err)
			continue
		}
		if got.Version != tc.wantVersion || got.Timeout != tc.wantTimeout || got.Name != "f" {
			t.Errorf("Resolve(f, %q) = %s version %s timeout %d, want version %s timeout %d",
				tc.qualifier, got.Name, got.Version, got.Timeout, tc.wantVersion, tc.wantTimeout)
		}
	}
	for _, q := range []string{"3", "0", "nope"} {
		if _, err := r.Resolve("f", q, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(f, %q): %v, want ErrNotFound", q, err)
		}
	}
	if _, err := r.Resolve("g", "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve of a missing function: %v, want ErrNotFound", err)
	}

	head, _ := r.Resolve("f", "", nil)
	one, _ := r.Resolve("f", "1", nil)
	viaAlias, _ := r.Resolve("f", "live", nil)
	if head.Revision != latest.Revision || one.Key == head.Key || viaAlias.Key != one.Key {
		t.Errorf("keys: $LATEST %s (revision %d, want %d), 1 %s, live %s: want the alias's the same as version 1's, and $LATEST's apart",
			head.Key, head.Revision, latest.Revision, one.Key, viaAlias.Key)
	}
	setTimeout(t, r, "f", 41)
	if next, _ := r.Resolve("f", "", nil); next.Key == head.Key || next.Revision <= head.Revision {
		t.Errorf("$LATEST after an update: key %s revision %d, want a new key and a higher revision than %s %d",
			next.Key, next.Revision, head.Key, head.Revision)
	}
}

// An alias with a second version sends a draw under additional_weight to
// the second version and the rest to the first; an alias without one
// draws nothing.
func TestAliasWeights(t *testing.T) {
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")
	publish(t, r, "f")
	setTimeout(t, r, "f", 20)
	publish(t, r, "f")
	putAlias(t, r, Alias{Name: "canary", Version: 1, AdditionalVersion: 2, AdditionalWeight: 0.25})
	putAlias(t, r, Alias{Name: "live", Version: 1})

	for _, tc := range []struct {
		draw float64
		want string
	}{
		{0, "2"},
		{0.2499, "2"},
		{0.25, "1"},
		{0.5, "1"},
		{0.9999, "1"},
	} {
		got, err := r.Resolve("f", "canary", func() float64 { return tc.draw })
		if err != nil || got.Version != tc.want {
			t.Errorf("canary with a draw of %v runs version %s (%v), want %s", tc.draw, got.Version, err, tc.want)
		}
	}
	drew := false
	if got, err := r.Resolve("f", "live", func() float64 { drew = true; return 0 }); err != nil || got.Version != "1" || drew {
		t.Errorf("live runs version %s (%v), drew %v; want version 1 and no draw", got.Version, err, drew)
	}
	// Without a pick the registry draws itself: both versions run.
	seen := map[string]int{}
	for range 400 {
		got, err := r.Resolve("f", "canary", nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[got.Version]++
	}
	if seen["1"] < 200 || seen["2"] < 50 {
		t.Errorf("400 calls of a 25%% canary ran %v, want about 300 of version 1 and 100 of version 2", seen)
	}
}

// An alias names published versions with weights between 0 and 1; what
// does not is refused before anything is written.
func TestAliasValidation(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")
	publish(t, r, "f")
	setTimeout(t, r, "f", 20)
	publish(t, r, "f")

	for _, tc := range []struct {
		name  string
		alias Alias
		want  string // in the message
	}{
		{"all digits, which would read as a version", Alias{Name: "12", Version: 1}, "must match"},
		{"bad name", Alias{Name: "Live", Version: 1}, "must match"},
		{"no version", Alias{Name: "live"}, "published version"},
		{"unpublished version", Alias{Name: "live", Version: 3}, "version 3"},
		{"unpublished additional version", Alias{Name: "live", Version: 1, AdditionalVersion: 3, AdditionalWeight: 0.5}, "version 3"},
		{"weight over 1", Alias{Name: "live", Version: 1, AdditionalVersion: 2, AdditionalWeight: 1.5}, "between 0 and 1"},
		{"negative weight", Alias{Name: "live", Version: 1, AdditionalVersion: 2, AdditionalWeight: -0.1}, "between 0 and 1"},
		{"weight without a second version", Alias{Name: "live", Version: 1, AdditionalWeight: 0.5}, "needs an additional_version"},
		{"second version the same", Alias{Name: "live", Version: 1, AdditionalVersion: 1, AdditionalWeight: 0.5}, "must differ"},
		{"description too long", Alias{Name: "live", Version: 1, Description: strings.Repeat("d", MaxDescription+1)}, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.PutAlias(ctx, "f", tc.alias, 0)
			if !isValidation(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PutAlias = %v, want a ValidationError about %q", err, tc.want)
			}
			if _, err := r.GetAlias(ctx, "f", tc.alias.Name); !errors.Is(err, ErrNotFound) {
				t.Errorf("a refused alias was stored: %v", err)
			}
		})
	}
	if _, _, err := r.PutAlias(ctx, "g", Alias{Name: "live", Version: 1}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("an alias of a missing function: %v, want ErrNotFound", err)
	}

	a, created, err := r.PutAlias(ctx, "f", Alias{Name: "live", Version: 1, AdditionalVersion: 2, AdditionalWeight: 1}, 0)
	if err != nil || !created {
		t.Fatalf("a valid alias: created %v, %v", created, err)
	}
	b, created, err := r.PutAlias(ctx, "f", Alias{Name: "live", Version: 2}, 0)
	if err != nil || created || b.Revision <= a.Revision || b.AdditionalVersion != 0 {
		t.Errorf("replacing it: %+v created %v (%v), want it replaced whole at a new revision", b, created, err)
	}
	list, err := r.ListAliases(ctx, "f")
	if err != nil || len(list) != 1 || list[0].Version != 2 {
		t.Errorf("aliases %+v (%v), want live at version 2", list, err)
	}
}

// Every write that names a revision (If-Match) lands only on that
// revision; one naming an older revision is refused with ErrStale and
// changes nothing. A write naming none lands whatever the revision.
func TestRevisionsGuardWrites(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	f0 := create(t, r, "f", "exports.handler = async () => 1;")
	publish(t, r, "f")
	timeout := 20
	f1, err := r.UpdateConfig(ctx, "f", Config{Timeout: &timeout}, f0.Revision)
	if err != nil || f1.Revision <= f0.Revision {
		t.Fatalf("an update at the current revision: revision %d (%v), want above %d", f1.Revision, err, f0.Revision)
	}
	stale := f0.Revision
	other := 30
	for _, tc := range []struct {
		name  string
		write func(rev uint64) error
	}{
		{"update config", func(rev uint64) error {
			_, err := r.UpdateConfig(ctx, "f", Config{Timeout: &other}, rev)
			return err
		}},
		{"update code", func(rev uint64) error {
			_, err := r.UpdateCode(ctx, "f", stage(t, "exports.handler = async () => 2;"), rev)
			return err
		}},
		{"publish", func(rev uint64) error {
			_, _, err := r.Publish(ctx, "f", "", rev)
			return err
		}},
		{"delete", func(rev uint64) error { return r.Delete(ctx, "f", rev) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(stale); !errors.Is(err, ErrStale) {
				t.Fatalf("at a stale revision: %v, want ErrStale", err)
			}
			if got, err := r.Get(ctx, "f"); err != nil || got.Revision != f1.Revision || got.Timeout != 20 {
				t.Errorf("after a refused write: revision %d timeout %d (%v), want %d and 20 unchanged", got.Revision, got.Timeout, err, f1.Revision)
			}
		})
	}
	if vers, _ := r.ListVersions(ctx, "f"); len(vers) != 1 {
		t.Errorf("%d versions after a stale publish, want 1", len(vers))
	}

	// An update that changes nothing writes nothing: others' If-Match
	// stays good.
	if same, err := r.UpdateConfig(ctx, "f", Config{Timeout: &timeout}, f1.Revision); err != nil || same.Revision != f1.Revision {
		t.Errorf("an update that changes nothing: revision %d (%v), want %d", same.Revision, err, f1.Revision)
	}
	// Revision 0 names none.
	if f2, err := r.UpdateConfig(ctx, "f", Config{Timeout: &other}, 0); err != nil || f2.Revision <= f1.Revision {
		t.Errorf("an update naming no revision: revision %d (%v), want above %d", f2.Revision, err, f1.Revision)
	}
	if _, err := r.Create(ctx, Config{Name: "f", Runtime: ptrTo("nodejs"), Handler: ptrTo("index.handler")}, stage(t, "x")); !errors.Is(err, ErrExists) {
		t.Errorf("creating f again: %v, want ErrExists", err)
	}
}

// Of writes racing at one revision, exactly one lands: the check is the
// store's, not only a read before the write.
func TestRacingWritesAtOneRevision(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	f := create(t, r, "f", "exports.handler = async () => 1;")
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeout := 10 + i
			_, errs[i] = r.UpdateConfig(ctx, "f", Config{Timeout: &timeout}, f.Revision)
		}()
	}
	wg.Wait()
	landed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			landed++
		case !errors.Is(err, ErrStale):
			t.Errorf("writer %d: %v, want nil or ErrStale", i, err)
		}
	}
	if landed != 1 {
		t.Errorf("%d of %d writes at revision %d landed, want 1", landed, writers, f.Revision)
	}
}

// An alias's writes name its own revision: a stale one, or one naming an
// alias that does not exist yet, is refused.
func TestAliasRevisions(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	create(t, r, "f", "exports.handler = async () => 1;")
	publish(t, r, "f")
	setTimeout(t, r, "f", 20)
	publish(t, r, "f")

	if _, _, err := r.PutAlias(ctx, "f", Alias{Name: "live", Version: 1}, 7); !errors.Is(err, ErrStale) {
		t.Errorf("creating an alias at a revision: %v, want ErrStale", err)
	}
	a := putAlias(t, r, Alias{Name: "live", Version: 1})
	b, _, err := r.PutAlias(ctx, "f", Alias{Name: "live", Version: 2}, a.Revision)
	if err != nil {
		t.Fatalf("an update at the current revision: %v", err)
	}
	if _, _, err := r.PutAlias(ctx, "f", Alias{Name: "live", Version: 1}, a.Revision); !errors.Is(err, ErrStale) {
		t.Errorf("an update at a stale revision: %v, want ErrStale", err)
	}
	if err := r.DeleteAlias(ctx, "f", "live", a.Revision); !errors.Is(err, ErrStale) {
		t.Errorf("a delete at a stale revision: %v, want ErrStale", err)
	}
	if got, err := r.Resolve("f", "live", nil); err != nil || got.Version != "2" {
		t.Errorf("live after refused writes runs version %s (%v), want 2", got.Version, err)
	}
	if err := r.DeleteAlias(ctx, "f", "live", b.Revision); err != nil {
		t.Fatalf("a delete at the current revision: %v", err)
	}
	if _, err := r.Resolve("f", "live", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted alias resolves: %v", err)
	}
}

// Code is kept while $LATEST or a version of any function points at it,
// and deleted once none does.
func TestUnusedCodeIsDeleted(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	a, b, c := stage(t, "exports.handler = async () => 'a';"), stage(t, "exports.handler = async () => 'b';"),
		stage(t, "exports.handler = async () => 'c';")
	stored := func(s *Staged) bool {
		t.Helper()
		rc, err := r.Code(ctx, s.SHA256)
		if errors.Is(err, ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		return true
	}
	want := func(step string, wantA, wantB, wantC bool) {
		t.Helper()
		if gotA, gotB, gotC := stored(a), stored(b), stored(c); gotA != wantA || gotB != wantB || gotC != wantC {
			t.Errorf("%s: code a, b, c stored %v %v %v, want %v %v %v", step, gotA, gotB, gotC, wantA, wantB, wantC)
		}
	}
	rt, h := "nodejs", "index.handler"
	if _, err := r.Create(ctx, Config{Name: "f", Runtime: &rt, Handler: &h}, a); err != nil {
		t.Fatal(err)
	}
	want("f created with a", true, false, false)

	if _, err := r.UpdateCode(ctx, "f", b, 0); err != nil {
		t.Fatal(err)
	}
	want("f moved to b", false, true, false)

	if _, err := r.UpdateCode(ctx, "f", b, 0); err != nil {
		t.Fatal(err)
	}
	want("f moved to b again", false, true, false)

	publish(t, r, "f") // version 1 runs b
	if _, err := r.UpdateCode(ctx, "f", c, 0); err != nil {
		t.Fatal(err)
	}
	want("f moved to c, version 1 on b", false, true, true)

	if _, err := r.Create(ctx, Config{Name: "g", Runtime: &rt, Handler: &h}, c); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "f", 0); err != nil {
		t.Fatal(err)
	}
	want("f deleted, g on c", false, false, true)

	// A write refused after the code was stored leaves no code behind.
	bad := "function:nope"
	if _, err := r.Create(ctx, Config{Name: "h", Runtime: &rt, Handler: &h, Async: &AsyncPatch{OnFailure: &bad}}, a); !isValidation(err) {
		t.Fatalf("a create naming a missing destination: %v, want a ValidationError", err)
	}
	if _, err := r.UpdateCode(ctx, "nope", b, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("new code for a missing function: %v, want ErrNotFound", err)
	}
	want("refused writes", false, false, true)

	if err := r.Delete(ctx, "g", 0); err != nil {
		t.Fatal(err)
	}
	want("g deleted", false, false, false)
}
