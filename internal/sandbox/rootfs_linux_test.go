package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProcMasked reads, from inside a sandbox, the global files of /proc
// that tell of the host: each the host has is there, and empty. What
// runtimes read is still there.
func TestProcMasked(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, `
for p in $MASKED; do
	if [ -d "/proc/$p" ]; then echo "$p dir $(ls -A "/proc/$p" | wc -l)"
	elif [ -e "/proc/$p" ]; then echo "$p file $(wc -c < "/proc/$p")"
	else echo "$p absent"; fi
done
for p in meminfo cpuinfo stat uptime loadavg version self/status self/maps sys/kernel/hostname sys/vm/overcommit_memory; do
	if [ -n "$(head -c 1 "/proc/$p")" ]; then echo "$p readable"; else echo "$p empty"; fi
done
`)
	spec.Env = append(spec.Env, "MASKED="+strings.Join(maskedProc, " "))
	st, out, errOut := run(t, m, spec)
	if st.Code != 0 {
		t.Errorf("status %+v (stderr %q)", st, errOut)
	}
	var want []string
	for _, name := range maskedProc {
		fi, err := os.Stat(filepath.Join("/proc", name))
		switch {
		case err != nil:
			want = append(want, name+" absent\n")
		case fi.IsDir():
			want = append(want, name+" dir 0\n")
		default:
			want = append(want, name+" file 0\n")
		}
	}
	want = append(want, "meminfo readable\n", "cpuinfo readable\n", "stat readable\n", "uptime readable\n",
		"loadavg readable\n", "version readable\n", "self/status readable\n", "self/maps readable\n",
		"sys/kernel/hostname readable\n", "sys/vm/overcommit_memory readable\n")
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in the output:\n%s\nstderr:\n%s", w, out, errOut)
		}
	}
}

// TestMountinfo reads the mount tables from inside a sandbox: they name
// none of the host's paths of the state dir, the code, the runtime or a
// read-only dir outside the system's (an interpreter's install), which
// still runs.
func TestMountinfo(t *testing.T) {
	m := newTestManager(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rt := t.TempDir()
	if err := os.Chmod(rt, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, `cat /proc/self/mountinfo; echo; cat /proc/self/mounts; echo "task: $(ls /var/task | tr "\n" " ")"; "$SELF" -test.run=^$`)
	spec.RuntimeDir = rt
	spec.ReadOnly = []string{filepath.Dir(self)}
	spec.Env = append(spec.Env, "SELF="+self)
	if err := os.WriteFile(filepath.Join(spec.CodeDir, "handler.py"), []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hidden := []string{m.stateDir, spec.CodeDir, rt, filepath.Dir(self)}
	if py, pyDir := python(t); pyDir != "" {
		spec.ReadOnly = append(spec.ReadOnly, pyDir)
		// It lists /var/task, to import from it.
		spec.Argv[2] += `; "$PY" -c 'import sys; sys.path.insert(0, "/var/task"); import handler; print("python", handler.x)'`
		spec.Env = append(spec.Env, "PY="+py)
		hidden = append(hidden, pyDir)
	}
	st, out, errOut := run(t, m, spec)
	t.Logf("stdout:\n%s", out)
	if st.Code != 0 {
		t.Errorf("status %+v (stderr %q)", st, errOut)
	}
	for _, p := range hidden {
		if strings.Contains(out, p) {
			t.Errorf("the mount tables show %s", p)
		}
	}
	for _, want := range []string{" /var/task ", "task: handler.py handler.txt \n", "PASS\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	if len(hidden) > 4 && !strings.Contains(out, "python 1\n") {
		t.Errorf("python did not run (stderr %q)", errOut)
	}
}
