// Package api serves the control plane: the /v1 HTTP API that manages
// functions, versions and aliases, and the admin auth in front of it.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Limits on request bodies.
const (
	maxJSONBody    = 1 << 20
	defaultPage    = 50
	maxPage        = 1000
	multipartSlack = 1 << 20 // room for the config part and multipart framing
)

// Config is what the API needs from the node.
type Config struct {
	Registry *registry.Registry
	// AdminToken is the bearer token every /v1 call must carry.
	AdminToken string
	// FunctionTokens are refused with 403 rather than 401.
	FunctionTokens FunctionTokens
	// CheckCode, if set, checks uploaded code for its runtime beyond the
	// archive's own checks (a wasm module must validate); what it refuses
	// is an InvalidCodeException.
	CheckCode func(ctx context.Context, runtime, handler string, code *registry.Staged) error
	// InsecureNoSandbox marks every function in answers: this node runs
	// them unsandboxed.
	InsecureNoSandbox bool
	// StageDir holds uploads while they are checked.
	StageDir string
	// Limits on code archives; zero means archive's defaults.
	Limits archive.Limits
	// Keys serves /v1/keys; nil answers those calls 501.
	Keys *auth.Keys
	// Logs serves GET /v1/functions/{name}/logs; nil answers it 501.
	Logs *telemetry.Logs
	// Events serves topics, subscriptions and schedules; nil answers
	// those calls 501.
	Events Events
	// Usage serves /v1/usage; nil answers it 501.
	Usage Usage
	// Stats serves GET /v1/stats: each function's activity on this node
	// since it started, as its metrics count it; nil answers it 501.
	Stats func() ([]apitype.FunctionStats, error)
	// Writable, if set, says whether the state store takes writes now;
	// a call that would write is refused up front when it does not
	// (507 on a full disk), so that nothing is changed half way.
	Writable func() error
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

type api struct {
	reg    *registry.Registry
	stage  string
	limits archive.Limits
	keys   *auth.Keys
	logs   *telemetry.Logs
	events Events
	usage  Usage
	stats  func() ([]apitype.FunctionStats, error)
	log    *slog.Logger
	now    func() time.Time
	// token and fnTokens authorize the calls functions may make too.
	token    string
	fnTokens FunctionTokens
	// insecure marks every function answered: it runs unsandboxed.
	insecure bool
	check    func(ctx context.Context, runtime, handler string, code *registry.Staged) error
	writable func() error
}

// checkCode runs Config.CheckCode; what it refuses is the caller's code.
func (a *api) checkCode(ctx context.Context, runtime, handler string, code *registry.Staged) error {
	if a.check == nil {
		return nil
	}
	if err := a.check(ctx, runtime, handler, code); err != nil {
		return apiError(apitype.TypeInvalidCode, err.Error())
	}
	return nil
}

// New returns the handler of /v1/….
func New(cfg Config) http.Handler {
	a := &api{check: cfg.CheckCode, reg: cfg.Registry, stage: cfg.StageDir, insecure: cfg.InsecureNoSandbox,
		limits: cfg.Limits.WithDefaults(), keys: cfg.Keys, logs: cfg.Logs, log: cfg.Logger,
		events: cfg.Events, usage: cfg.Usage, stats: cfg.Stats, now: cfg.Now, token: cfg.AdminToken, fnTokens: cfg.FunctionTokens,
		writable: cfg.Writable}
	if a.now == nil {
		a.now = time.Now
	}
	mux := http.NewServeMux()
	routes := []struct {
		pattern string
		h       func(http.ResponseWriter, *http.Request) error
	}{
		{"GET /v1/functions", a.listFunctions},
		{"POST /v1/functions", a.createFunction},
		{"GET /v1/functions/{name}", a.getFunction},
		{"PATCH /v1/functions/{name}", a.updateConfig},
		{"PUT /v1/functions/{name}/code", a.updateCode},
		{"GET /v1/functions/{name}/code", a.getCode},
		{"DELETE /v1/functions/{name}", a.deleteFunction},
		{"POST /v1/functions/{name}/versions", a.publish},
		{"GET /v1/functions/{name}/versions", a.listVersions},
		{"GET /v1/functions/{name}/versions/{n}", a.getVersion},
		{"PUT /v1/functions/{name}/aliases/{alias}", a.putAlias},
		{"GET /v1/functions/{name}/aliases/{alias}", a.getAlias},
		{"GET /v1/functions/{name}/aliases", a.listAliases},
		{"DELETE /v1/functions/{name}/aliases/{alias}", a.deleteAlias},
		{"GET /v1/functions/{name}/logs", a.functionLogs},
		{"POST /v1/keys", a.createKey},
		{"GET /v1/keys", a.listKeys},
		{"DELETE /v1/keys/{id}", a.deleteKey},
		{"GET /v1/events/catalog", a.eventCatalog},
		{"GET /v1/events/{topic}", a.readEvents},
		{"POST /v1/subscriptions", a.subscribe},
		{"GET /v1/subscriptions", a.listSubscriptions},
		{"DELETE /v1/subscriptions/{id}", a.unsubscribe},
		{"GET /v1/schedules", a.listSchedules},
		{"GET /v1/usage", a.getUsage},
		{"GET /v1/usage/records", a.usageRecords},
		{"GET /v1/stats", a.getStats},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, a.handle(rt.h))
	}
	mux.Handle("/v1/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return apiError(apitype.TypeResourceNotFound, "no API route "+r.Method+" "+r.URL.Path)
	}))
	// Functions may publish events with their own token; every other
	// call is the admin's.
	outer := http.NewServeMux()
	outer.Handle("POST /v1/events/{topic}", a.handle(a.publishEvent))
	outer.Handle("/", AdminOnly(cfg.AdminToken, cfg.FunctionTokens, cfg.Logger, mux))
	return outer
}

// handle adapts a handler that returns an error. Every call but a read
// writes to the state store, so it is refused first when the store takes
// no writes.
func (a *api) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && a.writable != nil {
			if err := a.writable(); err != nil {
				writeError(w, a.log, r, err)
				return
			}
		}
		if err := h(w, r); err != nil {
			writeError(w, a.log, r, err)
		}
	})
}

// FunctionTokens tells the tokens of function instances.
type FunctionTokens interface {
	Function(token string) (string, bool)
}

// AdminOnly lets through only requests that carry the admin bearer token.
// The control API and the node's other admin endpoints (/metrics) use it.
// A function's own token is known and refused (403).
func AdminOnly(token string, fnTokens FunctionTokens, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := auth.BearerToken(r.Header)
		if fnTokens != nil {
			if fn, isFn := fnTokens.Function(tok); isFn {
				writeError(w, log, r, apiError(apitype.TypeAccessDenied,
					"the token of function "+strconv.Quote(fn)+" cannot use the admin API"))
				return
			}
		}
		if !ok || !auth.IsToken(tok, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wisp"`)
			writeError(w, log, r, apiError(apitype.TypeUnauthorized, "missing or wrong bearer token"))
			return
		}
		// A flood of unauthenticated connections cannot close this one.
		connlimit.MarkAuthenticated(r.Context())
		next.ServeHTTP(w, r)
	})
}

// ifMatch reads the If-Match revision; 0 means unconditional.
func ifMatch(r *http.Request) (uint64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	rev, err := strconv.ParseUint(v, 10, 64)
	if err != nil || rev == 0 {
		return 0, badRequest(fmt.Sprintf("If-Match %q is not a revision", r.Header.Get("If-Match")))
	}
	return rev, nil
}

func (a *api) sendFunction(w http.ResponseWriter, status int, f registry.Function) error {
	out := wireFunction(f)
	out.InsecureNoSandbox = a.insecure
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(f.Revision, 10)))
	writeJSON(w, status, out)
	return nil
}

func (a *api) listFunctions(w http.ResponseWriter, r *http.Request) error {
	limit := defaultPage
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return badRequest(fmt.Sprintf("limit %q must be 1 to %d", s, maxPage))
		}
		limit = n
	}
	fns, next, err := a.reg.List(r.Context(), limit, r.URL.Query().Get("marker"))
	if err != nil {
		return err
	}
	list := apitype.FunctionList{Functions: each(fns, wireFunction), NextMarker: next}
	for i := range list.Functions {
		list.Functions[i].InsecureNoSandbox = a.insecure
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *api) createFunction(w http.ResponseWriter, r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return badRequest("create takes multipart/form-data with a config part (JSON) and a code part (zip or tar.gz)")
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.limits.MaxPacked+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return badRequest("bad multipart body: " + err.Error())
	}
	var (
		cfg       apitype.Config
		gotConfig bool
		code      *registry.Staged
	)
	defer func() { code.Close() }()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badRequestOrTooLarge("bad multipart body", err)
		}
		switch part.FormName() {
		case "config":
			if err := decodeJSON(part, &cfg, false); err != nil {
				return err
			}
			gotConfig = true
		case "code":
			if code != nil {
				return badRequest("more than one code part")
			}
			if code, err = registry.Stage(part, a.stage, a.limits); err != nil {
				return badRequestOrTooLarge("reading the code part", err)
			}
		default:
			return badRequest(fmt.Sprintf("unknown multipart part %q (want config and code)", part.FormName()))
		}
	}
	if !gotConfig {
		return badRequest("the config part is missing")
	}
	if code != nil && cfg.Runtime != nil {
		handler := ""
		if cfg.Handler != nil {
			handler = *cfg.Handler
		}
		if err := a.checkCode(r.Context(), *cfg.Runtime, handler, code); err != nil {
			return err
		}
	}
	f, err := a.reg.Create(r.Context(), cfg, code)
	if err != nil {
		return err
	}
	a.log.Info("function created", "function", f.Name, "sha256", f.CodeSHA256, "revision", f.Revision)
	return a.sendFunction(w, http.StatusCreated, f)
}

// badRequestOrTooLarge passes on errors that already say what they are
// and calls the rest a bad request.
func badRequestOrTooLarge(what string, err error) error {
	var (
		maxErr *http.MaxBytesError
		arcErr *archive.Error
		valErr *registry.ValidationError
	)
	if errors.As(err, &maxErr) || errors.As(err, &arcErr) || errors.As(err, &valErr) ||
		errors.Is(err, registry.ErrTooLarge) {
		return err
	}
	return badRequest(what + ": " + err.Error())
}

func (a *api) getFunction(w http.ResponseWriter, r *http.Request) error {
	f, err := a.reg.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return a.sendFunction(w, http.StatusOK, f)
}

func (a *api) updateConfig(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	var body apitype.Config
	if err := decodeJSON(r.Body, &body, false); err != nil {
		return err
	}
	cfg, name := body, r.PathValue("name")
	var f registry.Function
	for range 3 {
		var checked uint64
		if checked, err = a.checkCodeFor(r.Context(), name, cfg, rev); err != nil {
			return err
		}
		f, err = a.reg.UpdateConfig(r.Context(), name, cfg, max(rev, checked))
		// The code checked was replaced meanwhile: check again, unless
		// the caller named the revision.
		if rev != 0 || checked == 0 || !errors.Is(err, registry.ErrStale) {
			break
		}
	}
	if err != nil {
		return err
	}
	a.log.Info("function config updated", "function", f.Name, "revision", f.Revision)
	return a.sendFunction(w, http.StatusOK, f)
}

// checkCodeFor runs the code check deploy runs when a config change gives
// the function's stored code a new reading: runtime becoming wasm, or a
// wasm function's handler naming another module (the other runtimes' code
// is not read at deploy, so a change of theirs needs no check). It returns
// the revision whose code it checked, for the update to be conditional on,
// or 0 when no check was needed.
func (a *api) checkCodeFor(ctx context.Context, name string, cfg registry.Config, ifRevision uint64) (uint64, error) {
	if a.check == nil || (cfg.Runtime == nil && cfg.Handler == nil) {
		return 0, nil
	}
	cur, err := a.reg.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	if ifRevision != 0 && ifRevision != cur.Revision {
		return 0, nil // the update refuses it as stale
	}
	runtime, handler := cur.Runtime, cur.Handler
	if cfg.Runtime != nil {
		runtime = *cfg.Runtime
	}
	if cfg.Handler != nil {
		handler = *cfg.Handler
	}
	if runtime != "wasm" || (runtime == cur.Runtime && handler == cur.Handler) {
		return 0, nil
	}
	rc, err := a.reg.Code(ctx, cur.CodeSHA256)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	code, err := registry.Stage(rc, a.stage, a.limits)
	if err != nil {
		return 0, fmt.Errorf("api: staging the code of %s to check it: %w", name, err)
	}
	defer code.Close()
	if err := a.checkCode(ctx, runtime, handler, code); err != nil {
		return 0, err
	}
	return cur.Revision, nil
}

func (a *api) updateCode(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	// Say no before reading 50 MB when the answer is known.
	cur, err := a.reg.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if r.ContentLength > a.limits.MaxPacked {
		return fmt.Errorf("code archive is %d bytes: %w", r.ContentLength, registry.ErrTooLarge)
	}
	code, err := registry.Stage(http.MaxBytesReader(w, r.Body, a.limits.MaxPacked+1), a.stage, a.limits)
	if err != nil {
		return badRequestOrTooLarge("reading the code", err)
	}
	defer code.Close()
	if err := a.checkCode(r.Context(), cur.Runtime, cur.Handler, code); err != nil {
		return err
	}
	f, err := a.reg.UpdateCode(r.Context(), name, code, rev)
	if err != nil {
		return err
	}
	a.log.Info("function code updated", "function", f.Name, "sha256", f.CodeSHA256, "revision", f.Revision)
	return a.sendFunction(w, http.StatusOK, f)
}

func (a *api) getCode(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	sha := ""
	if s := r.URL.Query().Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return badRequest(fmt.Sprintf("version %q is not a number", s))
		}
		v, err := a.reg.GetVersion(r.Context(), name, n)
		if err != nil {
			return err
		}
		sha = v.Function.CodeSHA256
	} else {
		f, err := a.reg.Get(r.Context(), name)
		if err != nil {
			return err
		}
		sha = f.CodeSHA256
	}
	rc, err := a.reg.Code(r.Context(), sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Wisp-Code-Sha256", sha)
	// Up to 50 MB: more than the default write timeout allows a slow link.
	connlimit.ExtendWrite(w, int64(a.limits.MaxPacked))
	if _, err := io.Copy(w, rc); err != nil {
		a.log.Warn("api: code download cut off", "function", name, "err", err)
	}
	return nil
}

func (a *api) deleteFunction(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := a.reg.Delete(r.Context(), name, rev); err != nil {
		return err
	}
	a.log.Info("function deleted", "function", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) publish(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	var body struct {
		Description string `json:"description"`
	}
	if err := decodeJSON(r.Body, &body, true); err != nil {
		return err
	}
	v, created, err := a.reg.Publish(r.Context(), r.PathValue("name"), body.Description, rev)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.log.Info("version published", "function", v.Function.Name, "version", v.Version)
	}
	writeJSON(w, status, wireVersion(v))
	return nil
}

func (a *api) listVersions(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.reg.Get(r.Context(), name); err != nil {
		return err
	}
	vers, err := a.reg.ListVersions(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Versions []apitype.Version `json:"versions"`
	}{each(vers, wireVersion)})
	return nil
}

func (a *api) getVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		return apiError(apitype.TypeResourceNotFound, fmt.Sprintf("version %q not found", r.PathValue("n")))
	}
	v, err := a.reg.GetVersion(r.Context(), r.PathValue("name"), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireVersion(v))
	return nil
}

func (a *api) putAlias(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	var body struct {
		Version           int     `json:"version"`
		AdditionalVersion int     `json:"additional_version"`
		AdditionalWeight  float64 `json:"additional_weight"`
		Description       string  `json:"description"`
	}
	if err := decodeJSON(r.Body, &body, false); err != nil {
		return err
	}
	al, created, err := a.reg.PutAlias(r.Context(), r.PathValue("name"), registry.Alias{
		Name: r.PathValue("alias"), Version: body.Version, AdditionalVersion: body.AdditionalVersion,
		AdditionalWeight: body.AdditionalWeight, Description: body.Description,
	}, rev)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(al.Revision, 10)))
	writeJSON(w, status, al)
	return nil
}

func (a *api) getAlias(w http.ResponseWriter, r *http.Request) error {
	al, err := a.reg.GetAlias(r.Context(), r.PathValue("name"), r.PathValue("alias"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(al.Revision, 10)))
	writeJSON(w, http.StatusOK, al)
	return nil
}

func (a *api) listAliases(w http.ResponseWriter, r *http.Request) error {
	als, err := a.reg.ListAliases(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Aliases []apitype.Alias `json:"aliases"`
	}{als})
	return nil
}

func (a *api) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteAlias(r.Context(), r.PathValue("name"), r.PathValue("alias"), rev); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
