package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/server"
)

// hostile is a Node function that tries one thing it must not be able to
// do and reports what happened: {"ok": bool, "err": code, "detail": …}.
const hostile = `
const fs = require('fs'), cp = require('child_process'), net = require('net');
const tries = {
  read: (e) => fs.readFileSync(e.path, 'utf8').slice(0, 100),
  list: (e) => fs.readdirSync(e.path).join(','),
  write: (e) => { fs.writeFileSync(e.path, 'x'); return 'written'; },
  procs: () => fs.readdirSync('/proc').filter(n => /^[0-9]+$/.test(n)).join(','),
  kill: (e) => { process.kill(e.pid, 'SIGKILL'); return 'killed'; },
  whoami: () => ({uid: process.getuid(), gid: process.getgid(),
    caps: fs.readFileSync('/proc/self/status', 'utf8').match(/CapEff:\s*(\S+)/)[1],
    nnp: fs.readFileSync('/proc/self/status', 'utf8').match(/NoNewPrivs:\s*(\S+)/)[1]}),
  forkbomb: () => { const kids = []; try { for (let i = 0; i < 2000; i++) kids.push(cp.spawn('/bin/sleep', ['30'])); }
    finally { kids.forEach(k => { try { k.kill('SIGKILL'); } catch (_) {} }); } return kids.length; },
  alloc: (e) => { const bufs = []; for (let i = 0; i < e.mb; i++) bufs.push(Buffer.alloc(1 << 20, 1)); return bufs.length; },
  filltmp: (e) => { const chunk = Buffer.alloc(1 << 20, 1); let n = 0;
    const fd = fs.openSync('/tmp/fill', 'w'); try { for (; n < e.mb; n++) fs.writeSync(fd, chunk); } finally { fs.closeSync(fd); } return n; },
  connect: (e) => new Promise((resolve, reject) => {
    const s = net.connect({host: e.host, port: e.port, timeout: 2000});
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('timeout', () => { s.destroy(); reject(Object.assign(new Error('timeout'), {code: 'ETIMEDOUT'})); });
    s.on('error', reject);
  }),
  adminapi: async () => {
    const r = await fetch(process.env.WISP_API_URL + '/v1/functions', {headers: {authorization: 'Bearer ' + process.env.WISP_API_TOKEN}});
    return {status: r.status, body: await r.text()};
  },
};
exports.handler = async (e) => {
  try { return {ok: true, detail: await tries[e.try](e)}; }
  catch (err) { return {ok: false, err: err.code || String(err), detail: String(err.message || err)}; }
};`

type hostileAnswer struct {
	OK     bool            `json:"ok"`
	Err    string          `json:"err"`
	Detail json.RawMessage `json:"detail"`
}

type sandboxNode struct {
	funcNode
	dataDir string
}

func startSandboxNode(t *testing.T) sandboxNode {
	t.Helper()
	needTool(t, "node")
	if os.Geteuid() != 0 {
		t.Skip("sandbox tests need root (namespaces, cgroups); CI runs them as root")
	}
	dir := t.TempDir()
	n := sandboxNode{startNode(t, server.Config{DataDir: dir}), dir}
	n.deploy(t, writeFiles(t, map[string]string{"index.js": hostile}), apitype.Config{Name: "hostile",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Timeout: ptr2(20), MemoryMB: ptr2(1024)})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": "exports.handler = async (e) => ({echo: e});"}),
		apitype.Config{Name: "canary", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	return n
}

func (n sandboxNode) try(t *testing.T, fn string, event map[string]any) (hostileAnswer, client.InvokeResult) {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.Invoke(context.Background(), fn, payload, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var a hostileAnswer
	if res.FunctionError == "" {
		if err := json.Unmarshal(res.Payload, &a); err != nil {
			t.Fatalf("answer %s: %v", res.Payload, err)
		}
	}
	return a, res
}

// canaryWorks checks the node still serves another function.
func (n sandboxNode) canaryWorks(t *testing.T) {
	t.Helper()
	res, err := n.c.Invoke(context.Background(), "canary", []byte(`{"still":"here"}`), client.InvokeOptions{})
	if err != nil || res.FunctionError != "" || !strings.Contains(string(res.Payload), `"still":"here"`) {
		t.Fatalf("the node no longer serves other functions: %v %s", err, res.Payload)
	}
}

func TestSandboxContainsHostileFunctions(t *testing.T) {
	n := startSandboxNode(t)
	canary, err := n.c.GetFunction(context.Background(), "canary")
	if err != nil {
		t.Fatal(err)
	}
	n.canaryWorks(t) // its code is now unpacked in the node's cache
	nodePort := strings.TrimPrefix(n.URL(), "http://127.0.0.1:")
	for _, tc := range []struct {
		name    string
		event   map[string]any
		wantErr []string // the error codes that count as contained
	}{
		{"admin token file", map[string]any{"try": "read", "path": filepath.Join(n.dataDir, auth.AdminTokenFile)}, []string{"ENOENT", "EACCES"}},
		{"data dir", map[string]any{"try": "list", "path": n.dataDir}, []string{"ENOENT", "EACCES"}},
		{"another function's code", map[string]any{"try": "list", "path": filepath.Join(n.dataDir, "code", canary.CodeSHA256)}, []string{"ENOENT", "EACCES"}},
		{"etc shadow", map[string]any{"try": "read", "path": "/etc/shadow"}, []string{"ENOENT", "EACCES"}},
		{"host proc 1 environ", map[string]any{"try": "read", "path": "/proc/1/environ"}, []string{"ENOENT", "EACCES"}},
		{"kill the node", map[string]any{"try": "kill", "pid": os.Getpid()}, []string{"ESRCH", "EPERM"}},
		{"kill the init", map[string]any{"try": "kill", "pid": 1}, []string{"ESRCH", "EPERM"}},
		{"write var task", map[string]any{"try": "write", "path": "/var/task/evil.js"}, []string{"EROFS", "EACCES"}},
		{"write usr", map[string]any{"try": "write", "path": "/usr/evil"}, []string{"EROFS", "EACCES"}},
		{"connect to the node", map[string]any{"try": "connect", "host": "127.0.0.1", "port": nodePort}, []string{"ECONNREFUSED", "ENETUNREACH", "ETIMEDOUT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, res := n.try(t, "hostile", tc.event)
			if res.FunctionError != "" || a.OK || !contains(tc.wantErr, a.Err) {
				t.Errorf("not contained: %+v %s %s", a, res.FunctionError, res.Payload)
			}
			n.canaryWorks(t)
		})
	}

	t.Run("runs unprivileged", func(t *testing.T) {
		a, _ := n.try(t, "hostile", map[string]any{"try": "whoami"})
		var who struct {
			UID, GID  int
			Caps, NNP string
		}
		if err := json.Unmarshal(a.Detail, &who); err != nil {
			t.Fatal(err)
		}
		if who.UID == 0 || who.GID == 0 || strings.Trim(who.Caps, "0") != "" || who.NNP != "1" {
			t.Errorf("runs as %+v", who)
		}
	})
	t.Run("sees only its own processes", func(t *testing.T) {
		a, _ := n.try(t, "hostile", map[string]any{"try": "procs"})
		var list string
		if err := json.Unmarshal(a.Detail, &list); err != nil {
			t.Fatal(err)
		}
		if pids := strings.Split(list, ","); len(pids) > 4 || strings.Contains(","+list+",", fmt.Sprintf(",%d,", os.Getpid())) {
			t.Errorf("sees processes %s", list)
		}
		n.canaryWorks(t)
	})
	t.Run("fork bomb", func(t *testing.T) {
		a, res := n.try(t, "hostile", map[string]any{"try": "forkbomb"})
		if res.FunctionError == "" && a.OK {
			t.Errorf("2000 processes started: %+v", a)
		}
		n.canaryWorks(t)
	})
	t.Run("fills tmp", func(t *testing.T) {
		a, res := n.try(t, "hostile", map[string]any{"try": "filltmp", "mb": 600})
		if res.FunctionError != "" || a.OK || a.Err != "ENOSPC" {
			t.Errorf("filling /tmp: %+v %s", a, res.Payload)
		}
		n.canaryWorks(t)
	})
	t.Run("scoped token on the admin API", func(t *testing.T) {
		a, res := n.try(t, "hostile", map[string]any{"try": "adminapi"})
		var got struct{ Status int }
		if err := json.Unmarshal(a.Detail, &got); err != nil || got.Status != 403 {
			t.Errorf("admin API with the function's token: %+v %s", a, res.Payload)
		}
	})
	t.Run("out of memory", func(t *testing.T) {
		_, res := n.try(t, "hostile", map[string]any{"try": "alloc", "mb": 2000})
		if res.FunctionError == "" || !strings.Contains(string(res.Payload), "Runtime.OutOfMemory") {
			t.Errorf("allocating past the limit: %q %s", res.FunctionError, res.Payload)
		}
		n.canaryWorks(t)
		// A following call to the same function gets a fresh instance.
		if a, _ := n.try(t, "hostile", map[string]any{"try": "alloc", "mb": 10}); !a.OK {
			t.Errorf("after the OOM: %+v", a)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// portScanner, on the host's network, looks for other instances' Runtime
// APIs among the host's loopback listeners and asks each for an invocation.
// It answers the ports where the request was taken and left waiting, as a
// Runtime API does: another function's invocations could be taken there.
// Other processes' loopback servers are scanned too; on a loaded machine
// one can be slow, so a port counts only if it is still silent after 5 s.
const portScanner = `
const fs = require('fs'), net = require('net');
exports.handler = async () => {
  const own = parseInt(process.env.AWS_LAMBDA_RUNTIME_API.split(':')[1], 10);
  const ports = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map(l => l.trim().split(/\s+/)).filter(f => f.length > 3 && f[3] === '0A' && f[1].startsWith('0100007F:'))
    .map(f => parseInt(f[1].split(':')[1], 16)).filter(p => p !== own);
  const probe = (port, wait) => new Promise((resolve) => {
    const s = net.connect({host: '127.0.0.1', port});
    let got = '';
    const done = (how) => { s.destroy(); resolve(how); };
    s.setTimeout(wait, () => done(got ? 'answered' : 'hung'));
    s.on('connect', () => s.write('GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('data', (d) => { got += d; done('answered'); });
    s.on('close', () => done(got ? 'answered' : 'closed'));
    s.on('error', () => done('closed'));
  });
  // A port slow to answer (another process's server on a busy machine) is
  // asked again, longer: a Runtime API that took the request never answers.
  const hung = [];
  for (const p of ports) if (await probe(p, 500) === 'hung' && await probe(p, 5000) === 'hung') hung.push(p);
  return {scanned: ports.length, hung};
};`

func TestHostNetworkInstancesCannotReachEachOthersRuntimeAPI(t *testing.T) {
	n := startSandboxNode(t)
	n.deploy(t, writeFiles(t, map[string]string{"index.js": "exports.handler = async () => 'victim';"}),
		apitype.Config{Name: "victim", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Network: ptr2("host")})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": portScanner}),
		apitype.Config{Name: "scanner", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Network: ptr2("host"), Timeout: ptr2(30)})
	// The victim's instance is warm, its runtime waiting for work.
	if res, err := n.c.Invoke(context.Background(), "victim", nil, client.InvokeOptions{}); err != nil || res.FunctionError != "" {
		t.Fatalf("victim: %v %s", err, res.Payload)
	}
	res, err := n.c.Invoke(context.Background(), "scanner", nil, client.InvokeOptions{})
	if err != nil || res.FunctionError != "" {
		t.Fatalf("scanner: %v %s", err, res.Payload)
	}
	var got struct {
		Scanned int
		Hung    []int
	}
	if err := json.Unmarshal(res.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.Scanned == 0 || len(got.Hung) != 0 {
		t.Errorf("scanned %d ports; these took a Runtime API request from another function: %v", got.Scanned, got.Hung)
	}
	// The victim still works.
	if res, err := n.c.Invoke(context.Background(), "victim", nil, client.InvokeOptions{}); err != nil || string(res.Payload) != `"victim"` {
		t.Fatalf("victim after the scan: %v %s", err, res.Payload)
	}
}
