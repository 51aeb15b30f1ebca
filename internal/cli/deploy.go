package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// deployFlags are wisp deploy's flags. Only those the user set are sent.
type deployFlags struct {
	name         string
	runtime      string
	handler      string
	memory       int
	timeout      int
	env          []string
	description  string
	urlAuth      string
	concurrency  int
	minInstances int
	keepWarm     time.Duration
	network      string
	reuse        bool

	schedules []string // --schedule, each an expression
	timezone  string
	catchUp   bool

	retries     int
	maxEventAge time.Duration
	onSuccess   string
	onFailure   string
	deadLetter  string

	publish         []string
	maxQueuedEvents int64
	maxQueuedBytes  int64

	quota quotaFlags

	logMaxBytes  byteSize
	logRetention time.Duration
}

func newDeployCmd(g *globals) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Create or update a function from a directory",
		Long: `Create or update a function from a directory (default: the current one).

The directory is zipped and uploaded. The function is created if it does not
exist; otherwise its code is replaced and then the flags given change its
config (flags not given keep their value).

--schedule invokes the function on a clock, with the event EventBridge sends
a scheduled Lambda: rate(5 minutes), cron(0 12 * * ? *) or a five-field cron
such as '*/10 * * * *', read in --timezone. Repeat it for several schedules
(named schedule-1, schedule-2, …); the schedules given replace the function's
schedules, and --schedule '' removes them all.

--retries, --max-event-age and the destinations shape async invocations
(wisp invoke --async, schedules, subscriptions): how often a failed event is
tried again, how old it may get, and where its outcome goes. A destination is
function:NAME[:QUALIFIER] or topic:NAME; '' clears it. A failed event with no
--on-failure goes to the --dead-letter topic (default dlq.NAME).

--publish grants the function's own token (WISP_API_TOKEN) the topics it may
publish to: topic patterns, comma-separated, where * stands for one
dot-separated word and a last > for the rest (audit.* matches audit.login,
audit.> also audit.login.failed). Without it a function publishes to no
topic; '' takes every grant back. Grants count at once, for every version.
No grant gives dlq.* or the topics the node sends outcomes to.

--max-queued-events and --max-queued-bytes bound the function's queue of
events (waiting, retrying or running; 0: the node's default, 100,000 events
and 256 MiB): past either, an async invocation is refused (429
TooManyRequestsException, reason EventQueueFull), a topic's delivery goes to
the failure destination or dead-letter topic with condition EventQueueFull,
and a schedule's tick is skipped.

The --quota flags cap the function's usage per --quota-period (an hour, day
or month, UTC): once its invocations, GB-seconds or cost (at the node's
prices) in the period reach a cap, its calls are refused (429
TooManyRequestsException, reason SpendCapExceeded) until the next period,
and the spend-caps topic is told. The flags given change the function's
quota (the others keep their value; 0 lifts a cap); --quota-period ''
removes it. See what a function used with 'wisp usage'.

--log-max-bytes and --log-retention bound what is kept of the function's
log, in a stream of its own: past the size the oldest lines go first, and
none is kept longer than the retention; 0 sets the node's default back
(64MiB and 7 days unless the node says otherwise). Deleting the function
deletes its logs.

With --runtime go, a directory with a go.mod and no executable 'bootstrap' is
built first for linux (CGO_ENABLED=0, -tags lambda.norpc) and only the
resulting bootstrap is uploaded.`,
		Example: `  wisp deploy ./hello --runtime nodejs --handler index.handler
  wisp deploy --runtime go --memory 256 --env GREETING=hi
  wisp deploy --schedule 'rate(5 minutes)' --retries 0 --on-failure topic:failed
  wisp deploy --schedule 'cron(0 8 ? * MON-FRI *)' --timezone Europe/Paris
  wisp deploy --quota-period day --quota-invocations 10000 --quota-cost 1.50
  wisp deploy --log-max-bytes 256MiB --log-retention 72h
  wisp deploy --publish orders,audit.* --max-queued-events 10000`,
		Args: wantArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return deploy(cmd, g, dir, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "the function's name (default: the directory's name, lower-cased)")
	fl.StringVar(&f.runtime, "runtime", "", "provided, go, nodejs, python or wasm (needed to create)")
	fl.StringVar(&f.handler, "handler", "", "the entry point, such as index.handler (default for provided and go: bootstrap)")
	fl.IntVar(&f.memory, "memory", 0, "memory in MB, 128 to 10240 (default 128)")
	fl.IntVar(&f.timeout, "timeout", 0, "timeout in seconds, 1 to 900 (default 3)")
	fl.StringArrayVar(&f.env, "env", nil, "an environment variable K=V; repeatable; replaces all of them on update")
	fl.StringVar(&f.description, "description", "", "the function's description")
	fl.StringVar(&f.urlAuth, "url-auth", "", "who may call the function URL: token or none (default token)")
	fl.BoolVar(&f.reuse, "reuse", false, "wasm: keep a module instance warm between calls (the module must export a handler)")
	fl.StringVar(&f.network, "network", "", "the instances' network: none (only the Runtime API and Wisp's API) or host (default none)")
	fl.IntVar(&f.concurrency, "concurrency", 0, "reserved concurrency; 0 throttles every call, -1 un-reserves (default unreserved)")
	fl.IntVar(&f.minInstances, "min-instances", 0, "instances kept warm (default 0)")
	fl.DurationVar(&f.keepWarm, "keep-warm", 0, "how long an idle instance is kept before it stops, e.g. 30s or 1h (default: the node's, 10m)")
	fl.StringArrayVar(&f.schedules, "schedule", nil, "invoke on a clock: rate(…), cron(…) or a five-field cron; repeatable; replaces all schedules ('' removes them)")
	fl.StringVar(&f.timezone, "timezone", "", "the time zone of the --schedule expressions, such as Europe/Paris (default UTC)")
	fl.BoolVar(&f.catchUp, "catch-up", false, "fire a --schedule once for the ticks missed while no node ran (default: skip them)")
	fl.IntVar(&f.retries, "retries", 0, "async: how many times a failed event is tried again, 0 to 10 (default 2)")
	fl.DurationVar(&f.maxEventAge, "max-event-age", 0, "async: how old an event may get, retries included, 1m to 6h (default 6h)")
	fl.StringVar(&f.onSuccess, "on-success", "", "async: where a success record goes: function:NAME[:QUALIFIER] or topic:NAME")
	fl.StringVar(&f.onFailure, "on-failure", "", "async: where a failure record goes: function:NAME[:QUALIFIER] or topic:NAME")
	fl.StringVar(&f.deadLetter, "dead-letter", "", "async: the topic a failed event goes to without --on-failure (default dlq.NAME)")
	fl.StringSliceVar(&f.publish, "publish", nil, "topic patterns the function's token may publish to, such as orders,audit.*; replaces the grants ('' removes them)")
	fl.Int64Var(&f.maxQueuedEvents, "max-queued-events", 0, "async: how many events the function's queue holds at most (default: the node's, 100,000)")
	fl.Int64Var(&f.maxQueuedBytes, "max-queued-bytes", 0, "async: how many bytes of events the function's queue holds at most, 262144 or more (default: the node's, 256 MiB)")
	f.quota.add(fl, "the function's", true)
	fl.Var(&f.logMaxBytes, "log-max-bytes", "how much of the function's log is kept, 1MiB to 64GiB, such as 64MB or 1GiB (default: the node's, 64MiB)")
	fl.DurationVar(&f.logRetention, "log-retention", 0, "how long the function's log lines are kept, 1h to 8784h (366 days), such as 72h (default: the node's, 7 days)")
	return cmd
}

// configFromFlags is the config the flags the user set ask for, and whether
// they set any.
func configFromFlags(flags *pflag.FlagSet, f *deployFlags) (cfg apitype.Config, changed bool, err error) {
	set := func(name string) bool {
		if flags.Changed(name) {
			changed = true
			return true
		}
		return false
	}
	cfg.Runtime = ifSet(set("runtime"), &f.runtime)
	cfg.Handler = ifSet(set("handler"), &f.handler)
	cfg.MemoryMB = ifSet(set("memory"), &f.memory)
	cfg.Timeout = ifSet(set("timeout"), &f.timeout)
	if set("env") {
		cfg.Env = make(map[string]string, len(f.env))
		for _, kv := range f.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return apitype.Config{}, false, usageErrorf("--env %q is not K=V", kv)
			}
			cfg.Env[k] = v
		}
	}
	cfg.Description = ifSet(set("description"), &f.description)
	cfg.URLAuth = ifSet(set("url-auth"), &f.urlAuth)
	cfg.Network = ifSet(set("network"), &f.network)
	cfg.Reuse = ifSet(set("reuse"), &f.reuse)
	if set("concurrency") {
		if f.concurrency < 0 {
			cfg.ClearConcurrency = true
		} else {
			cfg.Concurrency = &f.concurrency
		}
	}
	cfg.MinInstances = ifSet(set("min-instances"), &f.minInstances)
	if set("keep-warm") {
		if f.keepWarm < time.Second && f.keepWarm != 0 {
			return apitype.Config{}, false, usageErrorf("--keep-warm %s is under a second", f.keepWarm)
		}
		s := int(f.keepWarm / time.Second)
		cfg.KeepWarm = &s
	}
	if set("schedule") {
		ss := []apitype.Schedule{}
		for _, expr := range f.schedules {
			if expr != "" {
				// Unnamed, the node names them schedule-1, schedule-2, ….
				ss = append(ss, apitype.Schedule{Expression: expr, Timezone: f.timezone, CatchUp: f.catchUp})
			}
		}
		cfg.Schedules = &ss
	} else if set("timezone") || set("catch-up") {
		return apitype.Config{}, false, usageErrorf("--timezone and --catch-up apply to the --schedule expressions given with them")
	}
	var async apitype.AsyncPatch
	async.Retries = ifSet(set("retries"), &f.retries)
	if set("max-event-age") {
		if f.maxEventAge%time.Second != 0 {
			return apitype.Config{}, false, usageErrorf("--max-event-age %s is not whole seconds", f.maxEventAge)
		}
		s := int(f.maxEventAge / time.Second)
		async.MaxEventAge = &s
	}
	async.OnSuccess = ifSet(set("on-success"), &f.onSuccess)
	async.OnFailure = ifSet(set("on-failure"), &f.onFailure)
	async.DeadLetter = ifSet(set("dead-letter"), &f.deadLetter)
	async.MaxQueuedEvents = ifSet(set("max-queued-events"), &f.maxQueuedEvents)
	async.MaxQueuedBytes = ifSet(set("max-queued-bytes"), &f.maxQueuedBytes)
	if set("publish") {
		grants := []string{}
		for _, g := range f.publish {
			if g = strings.TrimSpace(g); g != "" {
				grants = append(grants, g)
			}
		}
		cfg.Publish = &grants
	}
	if async != (apitype.AsyncPatch{}) {
		cfg.Async = &async
	}
	var logs apitype.LogsPatch
	if set("log-max-bytes") {
		b := int64(f.logMaxBytes)
		logs.MaxBytes = &b
	}
	if set("log-retention") {
		if f.logRetention < 0 || f.logRetention%time.Second != 0 {
			return apitype.Config{}, false, usageErrorf("--log-retention %s is not whole seconds", f.logRetention)
		}
		s := int(f.logRetention / time.Second)
		logs.MaxAge = &s
	}
	if logs != (apitype.LogsPatch{}) {
		cfg.Logs = &logs
	}
	// The quota is sent once the function's current one is known (deploy).
	if f.quota.given(flags) {
		if err := f.quota.check(flags); err != nil {
			return apitype.Config{}, false, err
		}
		changed = true
	}
	return cfg, changed, nil
}

// nameFromDir is the function name a directory gives: its base name,
// lower-cased, if that is a valid name.
func nameFromDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	name := strings.ToLower(filepath.Base(abs))
	if apitype.CheckName("function", name) != nil {
		return "", usageErrorf("directory %q does not make a function name ([a-z][a-z0-9-]{0,62}): pass --name", filepath.Base(abs))
	}
	return name, nil
}

func deploy(cmd *cobra.Command, g *globals, dir string, f *deployFlags) error {
	ctx := cmd.Context()
	cfg, configSet, err := configFromFlags(cmd.Flags(), f)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	name := f.name
	if !cmd.Flags().Changed("name") {
		if name, err = nameFromDir(dir); err != nil {
			return err
		}
	} else if err := apitype.CheckName("function", name); err != nil {
		return &usageError{err}
	}

	c, err := g.client()
	if err != nil {
		return err
	}
	current, err := c.GetFunction(ctx, name)
	create := client.IsNotFound(err)
	if err != nil && !create {
		return err
	}
	rt := current.Runtime
	if cfg.Runtime != nil {
		rt = *cfg.Runtime
	}
	if create && rt == "" {
		return usageErrorf("function %q does not exist yet: pass --runtime to create it", name)
	}
	if f.quota.given(cmd.Flags()) {
		// The node replaces the quota: the flags not given keep their value.
		if cfg.Quota, err = f.quota.apply(cmd.Flags(), current.Quota); err != nil {
			return err
		}
	}

	tmp, err := os.MkdirTemp("", "wisp-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := dir
	if rt == "go" {
		if src, err = buildGo(ctx, g.env, dir, tmp, cmd.ErrOrStderr()); err != nil {
			return err
		}
		if create && cfg.Handler == nil {
			h := "bootstrap"
			cfg.Handler = &h
		}
	}
	code, size, err := pack(src, tmp)
	if err != nil {
		return err
	}
	defer code.Close()

	var bar *progressBar
	if isTerminal(cmd.ErrOrStderr()) {
		bar = newProgressBar(cmd.ErrOrStderr(), size, g.now)
	}
	var fn apitype.Function
	if create {
		cfg.Name = name
		fn, err = c.CreateFunction(ctx, cfg, code, size, bar.update)
	} else {
		// Conditional on the revision read above, so a deploy racing
		// another change fails instead of undoing it.
		fn, err = c.UpdateCode(ctx, name, code, size, current.Revision, bar.update)
		if err == nil && configSet {
			bar.finish()
			fn, err = c.UpdateConfig(ctx, name, cfg, fn.Revision)
		}
	}
	bar.finish()
	if err != nil {
		return err
	}
	state := "updated"
	if create {
		state = "created"
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s  %s  revision %d\n", state, fn.Name, fullSHA(fn.CodeSHA256), fn.Revision)
	return err
}

// buildGo builds the Go program in dir for Linux into a directory of its own
// under tmp and returns that directory, holding just the executable
// bootstrap. A dir that already has an executable bootstrap is used as it is.
func buildGo(ctx context.Context, env []string, dir, tmp string, stderr io.Writer) (string, error) {
	if fi, err := os.Stat(filepath.Join(dir, "bootstrap")); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return dir, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("runtime go: %s has neither a go.mod to build nor an executable bootstrap", dir)
	} else if err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "build")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(stderr, "building %s for linux/%s\n", dir, runtime.GOARCH)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-tags", "lambda.norpc",
		"-o", filepath.Join(out, "bootstrap"), ".")
	build.Dir = dir
	build.Env = append(env[:len(env):len(env)], "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build in %s: %w", dir, err)
	}
	return out, nil
}

// pack zips dir into a temp file under tmp, so that its size is known before
// the upload, and returns it rewound.
func pack(dir, tmp string) (*os.File, int64, error) {
	f, err := os.CreateTemp(tmp, "code-*.zip")
	if err != nil {
		return nil, 0, err
	}
	if err := client.Pack(dir, f); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("packing %s: %w", dir, err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// ifSet is v when its flag was set, else nil: a field the update leaves
// as it is.
func ifSet[T any](set bool, v *T) *T {
	if set {
		return v
	}
	return nil
}
