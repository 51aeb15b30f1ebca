package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// controllers are the cgroup controllers a sandbox needs.
var controllers = []string{"memory", "pids", "cpu"}

// cgroupRoot is where a cgroup v2 host mounts the unified hierarchy.
const cgroupRoot = "/sys/fs/cgroup"

// sandboxesDir names the cgroup, under the node's own, that holds the
// sandboxes' cgroups.
const sandboxesDir = "wisp"

// nodeLeaf names the cgroup a v2 node moves itself into when its own
// cgroup must hand controllers down and so may hold no process.
const nodeLeaf = "wisp-node"

// hierarchy is where the node makes sandboxes' cgroups.
type hierarchy struct {
	version int
	// parents are the dirs the sandboxes' cgroups are made in: one per
	// controller on v1 (the same dir for co-mounted controllers), one on
	// v2, under the key "".
	parents map[string]string
}

// limits are what a sandbox's cgroup enforces, and the group whose CPU
// share it has part of ("" for none).
type limits struct {
	memoryMB, pidsMax int
	group             string
}

// groupPrefix starts the name of a group's cgroup, so that it never
// clashes with an instance's.
const groupPrefix = "group-"

// cpuShares is the v1 CPU share of a sandbox: CPU in proportion to memory,
// as Lambda gives, 1024 (the default share) at 1769 MB (one vCPU).
func cpuShares(memoryMB int) int {
	return max(2, memoryMB*1024/1769)
}

// cpuWeight is the v2 equivalent of cpuShares: 100 (the default weight)
// at 1769 MB.
func cpuWeight(memoryMB int) int {
	return min(10000, max(1, memoryMB*100/1769))
}

// cpuPeriodUs is the period of a sandbox's CPU cap: the kernel's default.
const cpuPeriodUs = 100000

// cpuQuotaUs is the CPU time a sandbox may use per period once capped:
// its memory's share of a CPU, as Lambda gives (one vCPU at 1769 MB,
// 5.8 at 10240 MB), and at least the kernel's least quota, 1 ms.
func cpuQuotaUs(memoryMB int) int {
	return max(1000, memoryMB*cpuPeriodUs/1769)
}

// detectHierarchy finds the cgroup version and the node's own cgroups, and
// readies the dir the sandboxes' cgroups are made in, rid of what nodes
// that died left in it.
func detectHierarchy(log *slog.Logger) (*hierarchy, error) {
	h, err := findHierarchy(log)
	if err != nil {
		return nil, err
	}
	for _, parent := range h.parents {
		h.sweep(parent, log)
	}
	return h, nil
}

// staleAfter is how old an empty cgroup must be before sweep removes it:
// another node may have just made one, to move an instance into.
const staleAfter = time.Minute

// sweep removes the empty cgroups under parent, and under its groups, that
// are older than staleAfter: a node killed leaves its instances' cgroups
// behind, empty once their processes went with it. A cgroup that holds a
// process or another cgroup is not empty, and the kernel refuses to
// remove it.
func (h *hierarchy) sweep(parent string, log *slog.Logger) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	removed := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if strings.HasPrefix(e.Name(), groupPrefix) {
			h.sweep(dir, log) // its instances first; the group goes once empty
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleAfter {
			continue
		}
		if unix.Rmdir(dir) == nil {
			removed++
		}
	}
	if removed > 0 {
		log.Info("sandbox: removed the empty cgroups of instances gone", "dir", parent, "removed", removed)
	}
}

func findHierarchy(log *slog.Logger) (*hierarchy, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	own := parseProcCgroup(self)
	mounts := parseMountinfo(mountinfo)
	if b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		m, ok := findMount(mounts, func(m mount) bool { return m.fstype == "cgroup2" && m.point == cgroupRoot })
		if !ok {
			return nil, fmt.Errorf("cgroup v2: not mounted at %s", cgroupRoot)
		}
		return setupV2(m, own, log)
	}
	return setupV1(own, mounts)
}

// setupV1 finds the memory, pids and cpu hierarchies and makes the
// sandboxes' parent in each.
func setupV1(own map[string]string, mounts []mount) (*hierarchy, error) {
	h := &hierarchy{version: 1, parents: map[string]string{}}
	var missing []string
	for _, c := range controllers {
		m, ok := findMount(mounts, func(m mount) bool {
			return m.fstype == "cgroup" && slices.Contains(strings.Split(m.superOpts, ","), c)
		})
		path, inSelf := own[c]
		if !ok || !inSelf {
			missing = append(missing, c)
			continue
		}
		dir := filepath.Join(m.point, relativeTo(path, m.root), sandboxesDir)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
		h.parents[c] = dir
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cgroup v1: controllers not mounted: %s", strings.Join(missing, ", "))
	}
	return h, nil
}

// setupV2 makes the sandboxes' parent under the node's cgroup in the
// unified hierarchy mounted as m, and hands it the controllers. A cgroup
// that hands controllers down may hold no process, so if the node's own
// cgroup refuses, the node moves itself into a leaf beside the sandboxes'
// parent.
func setupV2(m mount, own map[string]string, log *slog.Logger) (*hierarchy, error) {
	path, ok := own[""]
	if !ok {
		return nil, errors.New("cgroup v2: no unified entry in /proc/self/cgroup")
	}
	dir := filepath.Join(m.point, relativeTo(path, m.root))
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	var missing []string
	for _, c := range controllers {
		if !slices.Contains(strings.Fields(string(avail)), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cgroup v2: controllers not delegated to %s: %s", dir, strings.Join(missing, ", "))
	}
	if err := enableControllers(dir); errors.Is(err, unix.EBUSY) {
		leaf := filepath.Join(dir, nodeLeaf)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
			return nil, fmt.Errorf("cgroup v2: moving the node into %s: %w", leaf, err)
		}
		log.Info("sandbox: moved the node into a leaf cgroup, so its own can hand controllers to sandboxes", "cgroup", leaf)
		if err := enableControllers(dir); err != nil {
			return nil, fmt.Errorf("cgroup v2: %w (does %s hold other processes than the node?)", err, dir)
		}
	} else if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	parent := filepath.Join(dir, sandboxesDir)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	if err := enableControllers(parent); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	return &hierarchy{version: 2, parents: map[string]string{"": parent}}, nil
}

// enableControllers hands the sandbox controllers down from dir, if it
// does not already.
func enableControllers(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var add []string
	for _, c := range controllers {
		if !slices.Contains(strings.Fields(string(b)), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(file, strings.Join(add, " "))
}

// cgroup is one sandbox's cgroup (on v1, one per hierarchy).
type cgroup struct {
	version int
	memory  string // the dir of the memory controller's files
	pids    string // the dir of the pids controller's files
	cpu     string // the dir of the cpu controller's files
	// dirs are the distinct dirs, to attach to and remove.
	dirs []string
	// groups are the dirs of the groups it is in, removed with the last
	// of their instances.
	groups []string

	// peak is its peak memory file, kept open: read after every
	// invocation, and an open of a cgroup file costs more than its read.
	peakMu sync.Mutex // guards peak
	peak   *os.File
}

// create makes the cgroup named id and sets its limits.
func (h *hierarchy) create(id string, lim limits) (*cgroup, error) {
	g := &cgroup{version: h.version}
	dirOf := map[string]string{}
	for _, c := range controllers {
		parent := h.parents[c]
		if h.version == 2 {
			parent = h.parents[""]
		}
		// The group matters to the cpu controller; on v2 one dir holds
		// them all.
		grouped := lim.group != "" && (c == "cpu" || h.version == 2)
		if grouped {
			parent = filepath.Join(parent, groupPrefix+lim.group)
		}
		dir := filepath.Join(parent, id)
		dirOf[c] = dir
		if slices.Contains(g.dirs, dir) {
			continue
		}
		var err error
		if grouped {
			err = h.mkdirInGroup(parent, dir)
			if !slices.Contains(g.groups, parent) {
				g.groups = append(g.groups, parent)
			}
		} else {
			err = mkdirFresh(dir)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cgroup: %w", err), g.destroy())
		}
		g.dirs = append(g.dirs, dir)
	}
	g.memory, g.pids, g.cpu = dirOf["memory"], dirOf["pids"], dirOf["cpu"]
	mem := strconv.Itoa(lim.memoryMB << 20)
	var err error
	if h.version == 2 {
		err = errors.Join(
			writeFile(filepath.Join(g.memory, "memory.max"), mem),
			optional(writeFile(filepath.Join(g.memory, "memory.swap.max"), "0")),
			writeFile(filepath.Join(g.pids, "pids.max"), strconv.Itoa(lim.pidsMax)),
			writeFile(filepath.Join(g.cpu, "cpu.weight"), strconv.Itoa(cpuWeight(lim.memoryMB))),
		)
	} else {
		// memsw is memory plus swap: equal to the memory limit, no swap.
		// It does not exist where swap is not accounted.
		err = errors.Join(
			writeFile(filepath.Join(g.memory, "memory.limit_in_bytes"), mem),
			optional(writeFile(filepath.Join(g.memory, "memory.memsw.limit_in_bytes"), mem)),
			optional(writeFile(filepath.Join(g.memory, "memory.swappiness"), "0")),
			writeFile(filepath.Join(g.pids, "pids.max"), strconv.Itoa(lim.pidsMax)),
			writeFile(filepath.Join(g.cpu, "cpu.shares"), strconv.Itoa(cpuShares(lim.memoryMB))),
		)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cgroup: %w", err), g.destroy())
	}
	return g, nil
}

// mkdirInGroup makes dir in the group's cgroup group, making that first
// if need be. The last instance of the group removes it as it goes,
// perhaps between the two (another node's, too), so a missing group is
// made again.
func (h *hierarchy) mkdirInGroup(group, dir string) error {
	for try := 0; ; try++ {
		if err := os.Mkdir(group, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if h.version == 2 {
			if err := enableControllers(group); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		err := mkdirFresh(dir)
		if !errors.Is(err, fs.ErrNotExist) || try == 3 {
			return err
		}
	}
}

// mkdirFresh makes dir; one left over by a node that died is removed
// first, which only works if no process is left in it.
func mkdirFresh(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		if err := unix.Rmdir(dir); err != nil {
			return fmt.Errorf("%s exists and cannot be removed: %w", dir, err)
		}
		err = os.Mkdir(dir, 0o755)
	}
	return err
}

// optional ignores the error of a file the kernel does not offer.
func optional(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// capCPU caps the cgroup's CPU at cpuQuotaUs(memoryMB) per cpuPeriodUs,
// beside its share.
func (g *cgroup) capCPU(memoryMB int) error {
	quota, period := strconv.Itoa(cpuQuotaUs(memoryMB)), strconv.Itoa(cpuPeriodUs)
	if g.version == 2 {
		return writeFile(filepath.Join(g.cpu, "cpu.max"), quota+" "+period)
	}
	if err := writeFile(filepath.Join(g.cpu, "cpu.cfs_period_us"), period); err != nil {
		return err
	}
	return writeFile(filepath.Join(g.cpu, "cpu.cfs_quota_us"), quota)
}

// open returns a descriptor of the v2 cgroup's dir, for CLONE_INTO_CGROUP.
func (g *cgroup) open() (int, error) {
	return unix.Open(g.dirs[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// attach moves the process pid, all its threads, into the cgroup.
func (g *cgroup) attach(pid int) error {
	for _, dir := range g.dirs {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup: attach: %w", err)
		}
	}
	return nil
}

// procs returns the pids in the cgroup's dirs.
func (g *cgroup) procs() ([]int, error) {
	var pids []int
	for _, dir := range g.dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return pids, err
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// oomKills returns how many processes the kernel killed for the cgroup's
// memory limit.
func (g *cgroup) oomKills() (int64, error) {
	file := "memory.oom_control"
	if g.version == 2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(g.memory, file))
	if err != nil {
		return 0, err
	}
	return keyedValue(b, "oom_kill")
}

// peakBytes returns the cgroup's peak memory use.
func (g *cgroup) peakBytes() (int64, error) {
	g.peakMu.Lock()
	defer g.peakMu.Unlock()
	if g.peak == nil {
		file := "memory.max_usage_in_bytes"
		if g.version == 2 {
			file = "memory.peak" // since Linux 5.19
		}
		f, err := os.Open(filepath.Join(g.memory, file))
		if err != nil {
			return 0, err
		}
		g.peak = f
	}
	// A cgroup file says its value anew at every read from offset 0.
	var buf [32]byte
	n, err := g.peak.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
}

// destroyWait bounds how long destroy waits for killed processes to go.
const destroyWait = 2 * time.Second

// destroy kills whatever is left in the cgroup and removes it.
func (g *cgroup) destroy() error {
	g.peakMu.Lock()
	if g.peak != nil {
		g.peak.Close() //nolint:errcheck // read-only
		g.peak = nil
	}
	g.peakMu.Unlock()
	if g.version == 2 && len(g.dirs) > 0 {
		// cgroup.kill: since Linux 5.14; else the loop below.
		if err := optional(writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1")); err != nil {
			return fmt.Errorf("cgroup: kill: %w", err)
		}
	}
	deadline := time.Now().Add(destroyWait)
	var errs []error
	for _, dir := range g.dirs {
		if err := emptyCgroup(dir, deadline); err != nil {
			errs = append(errs, err)
			continue
		}
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", dir, err))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, group := range g.groups {
		// The group's last instance removes it; while others are in it,
		// the kernel refuses (EBUSY), and that is as it should be.
		if err := unix.Rmdir(group); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", group, err))
		}
	}
	return errors.Join(errs...)
}

// emptyCgroup kills the processes in dir until there are none. The kernel
// ends a sandbox with its init, so normally there are none to begin with.
func emptyCgroup(dir string, deadline time.Time) error {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %s still holds processes %v", dir, pids)
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 0 {
				if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("cgroup: kill %d: %w", pid, err)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeFile writes s to an existing (cgroup) file.
func writeFile(name, s string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

// keyedValue returns the value of key in a cgroup file of "key value"
// lines.
func keyedValue(b []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("cgroup: no %s", key)
}

// parseProcCgroup parses /proc/<pid>/cgroup into the path of each
// controller; the v2 (unified) path is under "".
func parseProcCgroup(b []byte) map[string]string {
	paths := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			paths[""] = parts[2]
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c != "" {
				paths[c] = parts[2]
			}
		}
	}
	return paths
}

// mount is one line of /proc/<pid>/mountinfo, as far as needed here.
type mount struct {
	root, point, fstype, superOpts string
}

// parseMountinfo parses /proc/<pid>/mountinfo.
func parseMountinfo(b []byte) []mount {
	var ms []mount
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		ms = append(ms, mount{root: unescapeMountinfo(f[3]), point: unescapeMountinfo(f[4]), fstype: g[0], superOpts: g[2]})
	}
	return ms
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the last mount that matches: a later mount hides an
// earlier one at the same point.
func findMount(ms []mount, match func(mount) bool) (mount, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if match(ms[i]) {
			return ms[i], true
		}
	}
	return mount{}, false
}

// relativeTo returns a cgroup path relative to the root of the mount that
// shows it (a container may see only its own part of a hierarchy).
func relativeTo(path, root string) string {
	if root == "/" {
		return path
	}
	if rel, ok := strings.CutPrefix(path, root); ok && (rel == "" || rel[0] == '/') {
		return rel
	}
	return path
}
