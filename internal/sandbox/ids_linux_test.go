package sandbox

import (
	"fmt"
	"strings"
	"testing"
)

func TestIDRange(t *testing.T) {
	r := newIDRange(100, 3)
	steps := []struct {
		name         string
		release      [][2]int // sandboxes' uid and gid, given back first
		uid, gid     int      // asked for
		wantU, wantG int
		wantErr      string
	}{
		{name: "first", wantU: 100, wantG: 100},
		{name: "next", wantU: 101, wantG: 101},
		{name: "after a release, still the next", release: [][2]int{{100, 100}}, wantU: 102, wantG: 102},
		{name: "round the range", wantU: 100, wantG: 100},
		{name: "all in use", wantErr: "all 3 ids from 100 are in use"},
		{name: "asked for, even in use", uid: 101, gid: 5000, wantU: 101, wantG: 5000},
		{name: "skips ids in use", release: [][2]int{{100, 100}}, wantU: 100, wantG: 100},
		{name: "an id asked for counts as in use", release: [][2]int{{101, 101}}, wantErr: "in use"},
		{name: "its last user gone", release: [][2]int{{101, 5000}}, gid: 7, wantU: 101, wantG: 7},
	}
	for _, s := range steps {
		for _, ids := range s.release {
			r.release(ids[0], ids[1])
		}
		u, g, err := r.acquire(s.uid, s.gid)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("%s: got %d, %d, %v; want an error with %q", s.name, u, g, err, s.wantErr)
			}
			continue
		}
		if err != nil || u != s.wantU || g != s.wantG {
			t.Fatalf("%s: got %d, %d, %v; want %d, %d", s.name, u, g, err, s.wantU, s.wantG)
		}
	}
}

// TestOwnIDs starts sandboxes back to back: each runs as its own user, so
// that none shares per-user kernel state with another.
func TestOwnIDs(t *testing.T) {
	m := newTestManager(t)
	script := `echo "$(id -u) $(id -g) $(id -un) $(id -gn)"; echo ready; sleep 100`
	a := start(t, m, testSpec(t, script))
	b := start(t, m, testSpec(t, script))
	given := testSpec(t, script)
	given.UID, given.GID = 4242, 4343
	c := start(t, m, given)
	var got []string
	for _, r := range []*running{a, b, c} {
		r.stdout.waitFor(t, "ready")
		line, _, _ := strings.Cut(r.stdout.String(), "\n")
		got = append(got, line)
	}
	var ua, ub int
	if _, err := fmt.Sscan(got[0], &ua); err != nil {
		t.Fatalf("got %q: %v", got, err)
	}
	if _, err := fmt.Sscan(got[1], &ub); err != nil {
		t.Fatalf("got %q: %v", got, err)
	}
	for _, u := range []int{ua, ub} {
		if u < DefaultIDBase || u >= DefaultIDBase+DefaultIDCount {
			t.Errorf("uid %d, want one of [%d, %d)", u, DefaultIDBase, DefaultIDBase+DefaultIDCount)
		}
	}
	if ua == ub {
		t.Errorf("both sandboxes run as %d", ua)
	}
	for i, want := range []string{
		fmt.Sprintf("%[1]d %[1]d wisp wisp", ua),
		fmt.Sprintf("%[1]d %[1]d wisp wisp", ub),
		"4242 4343 wisp wisp",
	} {
		if got[i] != want {
			t.Errorf("sandbox %d: got %q, want %q", i, got[i], want)
		}
	}
}
