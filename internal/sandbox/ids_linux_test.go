package sandbox

import (
	"fmt"
	"path/filepath"
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
		if lo, hi := m.ids.base, m.ids.base+m.ids.count; u < lo || u >= hi {
			t.Errorf("uid %d, want one of the manager's [%d, %d)", u, lo, hi)
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

// TestClaimIDs takes ranges of ids from one lock file, as managers of
// nodes on one host do.
func TestClaimIDs(t *testing.T) {
	lockFile := filepath.Join(t.TempDir(), "run", "ids.lock")
	claim := func(base, count int) (*idRange, func()) {
		t.Helper()
		r, f, err := claimIDs(lockFile, base, count)
		if err != nil {
			t.Fatal(err)
		}
		return r, func() {
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	a, closeA := claim(100, 10)
	b, closeB := claim(100, 10)
	defer closeB()
	// Another size: its first range would overlap both.
	c, closeC := claim(100, 25)
	defer closeC()
	for _, tc := range []struct {
		name        string
		r           *idRange
		base, count int
	}{{"first", a, 100, 10}, {"second", b, 110, 10}, {"past the overlaps", c, 125, 25}} {
		if tc.r.base != tc.base || tc.r.count != tc.count {
			t.Errorf("%s: [%d, +%d), want [%d, +%d)", tc.name, tc.r.base, tc.r.count, tc.base, tc.count)
		}
	}
	closeA()
	d, closeD := claim(100, 10)
	defer closeD()
	if d.base != 100 {
		t.Errorf("after the first was given back: from %d, want 100", d.base)
	}

	// The last range below the kernel's "no id", then none.
	top, closeTop := claim(maxID-14, 10)
	defer closeTop()
	if top.base != maxID-14 {
		t.Errorf("near the top: from %d, want %d", top.base, maxID-14)
	}
	if _, _, err := claimIDs(lockFile, maxID-14, 10); err == nil || !strings.Contains(err.Error(), "every range of 10 ids") {
		t.Errorf("past the top: %v", err)
	}
}

// TestManagersOwnIDRanges starts two managers, as two nodes on one host,
// and a sandbox of each: each manager has a range of its own, locked in
// the host-wide lock file, and its sandbox runs as an id of it.
func TestManagersOwnIDRanges(t *testing.T) {
	a, b := newTestManager(t), newTestManager(t)
	if a.ids.base < b.ids.base+b.ids.count && b.ids.base < a.ids.base+a.ids.count {
		t.Errorf("the managers' ranges overlap: [%d, +%d) and [%d, +%d)", a.ids.base, a.ids.count, b.ids.base, b.ids.count)
	}
	script := `id -u; echo ready; sleep 100`
	ra, rb := start(t, a, testSpec(t, script)), start(t, b, testSpec(t, script))
	var uids []int
	for _, r := range []*running{ra, rb} {
		r.stdout.waitFor(t, "ready")
		var u int
		if _, err := fmt.Sscan(r.stdout.String(), &u); err != nil {
			t.Fatalf("got %q: %v", r.stdout.String(), err)
		}
		uids = append(uids, u)
	}
	if uids[0] == uids[1] {
		t.Errorf("both sandboxes run as %d", uids[0])
	}
	for i, m := range []*Manager{a, b} {
		if u := uids[i]; u < m.ids.base || u >= m.ids.base+m.ids.count {
			t.Errorf("sandbox %d runs as %d, outside its manager's [%d, +%d)", i, u, m.ids.base, m.ids.count)
		}
	}
}
