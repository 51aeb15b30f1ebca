package sandbox

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	procCgroup := "12:pids:/user.slice\n4:memory:/process_api/abc\n3:cpu,cpuacct:/x\n1:name=systemd:/\n0::/init.scope\n"
	got := parseProcCgroup([]byte(procCgroup))
	want := map[string]string{"pids": "/user.slice", "memory": "/process_api/abc", "cpu": "/x", "cpuacct": "/x",
		"name=systemd": "/", "": "/init.scope"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseProcCgroup: got %v, want %v", got, want)
	}

	mountinfo := "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n" +
		"36 31 0:33 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
		"41 31 0:38 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
	ms := parseMountinfo([]byte(mountinfo))
	if len(ms) != 3 {
		t.Fatalf("parseMountinfo: %v", ms)
	}
	if got, want := ms[1], (mount{root: "/docker/abc", point: "/sys/fs/cgroup/cpu,cpuacct", fstype: "cgroup", superOpts: "rw,cpu,cpuacct"}); got != want {
		t.Errorf("parseMountinfo: got %+v, want %+v", got, want)
	}
	if got := ms[2].point; got != "/mnt/with space" {
		t.Errorf("unescaped mount point %q", got)
	}

	for _, tc := range []struct{ path, root, want string }{
		{"/a/b", "/", "/a/b"},
		{"/docker/abc/x", "/docker/abc", "/x"},
		{"/docker/abc", "/docker/abc", ""},
		{"/docker/abcd", "/docker/abc", "/docker/abcd"},
	} {
		if got := relativeTo(tc.path, tc.root); got != tc.want {
			t.Errorf("relativeTo(%q, %q) = %q, want %q", tc.path, tc.root, got, tc.want)
		}
	}

	for _, tc := range []struct{ mb, shares, weight, quota int }{
		{1, 2, 1, 1000}, {128, 74, 7, 7235}, {1769, 1024, 100, 100000}, {10240, 5927, 578, 578858},
	} {
		if got := cpuShares(tc.mb); got != tc.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tc.mb, got, tc.shares)
		}
		if got := cpuWeight(tc.mb); got != tc.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", tc.mb, got, tc.weight)
		}
		if got := cpuQuotaUs(tc.mb); got != tc.quota {
			t.Errorf("cpuQuotaUs(%d) = %d, want %d", tc.mb, got, tc.quota)
		}
	}

	if n, err := keyedValue([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), "oom_kill"); n != 3 || err != nil {
		t.Errorf("keyedValue: %d, %v", n, err)
	}
}

// TestHierarchySetup runs the cgroup setup on a fake tree of plain files:
// the paths it picks and what it writes, on v1 and on v2, which this
// test's host may not have.
func TestHierarchySetup(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("v2", func(t *testing.T) {
		root := t.TempDir()
		own := filepath.Join(root, "system.slice", "wisp.service")
		write(filepath.Join(own, "cgroup.controllers"), "cpuset cpu io memory pids\n")
		write(filepath.Join(own, "cgroup.subtree_control"), "cpu\n")
		write(filepath.Join(own, sandboxesDir, "cgroup.subtree_control"), "")
		h, err := setupV2(mount{root: "/", point: root, fstype: "cgroup2"},
			map[string]string{"": "/system.slice/wisp.service"}, discard)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := h.parents[""], filepath.Join(own, sandboxesDir); h.version != 2 || got != want {
			t.Errorf("v%d parent %q, want v2 %q", h.version, got, want)
		}
		for dir, want := range map[string]string{own: "+memory +pids", filepath.Join(own, sandboxesDir): "+memory +pids +cpu"} {
			if b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); err != nil || string(b) != want {
				t.Errorf("%s/cgroup.subtree_control: %q, %v; want %q", dir, b, err, want)
			}
		}

		write(filepath.Join(own, "cgroup.controllers"), "cpu io memory\n")
		_, err = setupV2(mount{root: "/", point: root, fstype: "cgroup2"},
			map[string]string{"": "/system.slice/wisp.service"}, discard)
		if err == nil || !strings.Contains(err.Error(), "controllers not delegated") || !strings.HasSuffix(err.Error(), ": pids") {
			t.Errorf("without pids: %v", err)
		}
	})
	t.Run("v1", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"memory/docker/abc/x", "pids/x", "cpu,cpuacct"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mounts := []mount{
			{root: "/", point: filepath.Join(root, "memory"), fstype: "cgroup", superOpts: "rw,memory"},
			{root: "/", point: filepath.Join(root, "pids"), fstype: "cgroup", superOpts: "rw,pids"},
			{root: "/", point: filepath.Join(root, "cpu,cpuacct"), fstype: "cgroup", superOpts: "rw,cpu,cpuacct"},
		}
		own := map[string]string{"memory": "/docker/abc/x", "pids": "/x", "cpu": "/", "cpuacct": "/"}
		h, err := setupV1(own, mounts)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"memory": filepath.Join(root, "memory/docker/abc/x", sandboxesDir),
			"pids":   filepath.Join(root, "pids/x", sandboxesDir),
			"cpu":    filepath.Join(root, "cpu,cpuacct", sandboxesDir),
		}
		if fmt.Sprint(h.parents) != fmt.Sprint(want) {
			t.Errorf("parents %v, want %v", h.parents, want)
		}
		if _, err := setupV1(own, mounts[:2]); err == nil || !strings.HasSuffix(err.Error(), "not mounted: cpu") {
			t.Errorf("without cpu: %v", err)
		}
	})
}

// TestCPUCap caps a spinning sandbox: the kernel throttles it at its
// memory's share of a CPU.
func TestCPUCap(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, "echo ready; while :; do :; done")
	spec.MemoryMB = 128
	r := start(t, m, spec)
	r.stdout.waitFor(t, "ready")
	quotaFile, statFile := "cpu.cfs_quota_us", "cpu.stat"
	if r.cg.version == 2 {
		quotaFile = "cpu.max"
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(r.cg.cpu, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// Uncapped while the runtime starts.
	if got := read(quotaFile); got != "-1" && !strings.HasPrefix(got, "max ") {
		t.Errorf("%s before the cap: %q", quotaFile, got)
	}
	if err := r.CapCPU(); err != nil {
		t.Fatal(err)
	}
	want := "7235"
	if r.cg.version == 2 {
		want = "7235 100000"
	}
	if got := read(quotaFile); got != want {
		t.Errorf("%s: %q, want %q", quotaFile, got, want)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := keyedValue([]byte(read(statFile)), "nr_throttled"); err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q: never throttled", statFile, read(statFile))
		}
	}
}
