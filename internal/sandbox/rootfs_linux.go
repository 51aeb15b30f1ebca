package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// systemDirs are shown read-only at their own path, or recreated as the
// same symlink (a merged-/usr system links /bin, /lib... into /usr).
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcPaths are the host's /etc entries runtimes need, shown read-only with
// symlinks followed: TLS roots, the dynamic linker's cache, Debian's
// alternatives (/usr/bin links through them), name resolution and the
// time zone. Never its users: /etc/passwd and /etc/group are written
// fresh, and /etc/shadow is absent.
var etcPaths = []string{
	"/etc/ssl", "/etc/ssl/certs", "/etc/pki", "/etc/ca-certificates", "/etc/crypto-policies",
	"/etc/alternatives",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/localtime",
	"/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
	"/etc/services", "/etc/protocols",
}

// maskedProc are the global files of /proc that tell of the host, its
// kernel or its other processes, hidden as container runtimes hide them:
// the kernel's symbols, memory and log, keyrings, timers and the
// scheduler's view of every task, the modules and hardware, and the
// interrupt counts (a timing side channel). A file reads as empty (the
// host's /dev/null is bound over it), a dir as an empty read-only tmpfs.
// None of them is read by a runtime: meminfo, cpuinfo, stat, uptime,
// loadavg, sys and the processes' own dirs stay.
var maskedProc = []string{
	"kallsyms", "kcore", "kmsg", "kpagecount", "kpageflags", "kpagecgroup", "vmallocinfo", "slabinfo",
	"pagetypeinfo", "config.gz", "keys", "key-users", "timer_list", "timer_stats", "sched_debug",
	"latency_stats", "sysrq-trigger", "modules", "iomem", "ioports", "interrupts", "softirqs",
	"acpi", "asound", "scsi", "bus", "irq", "driver",
}

// devices are bound from the host's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// Sizes of the small tmpfs mounts.
const (
	rootSize = "size=1m,nr_inodes=4096,mode=0755"
	devSize  = "size=64k,nr_inodes=64,mode=0755"
	shmMaxMB = 64
)

// buildRoot builds the sandbox's root on a tmpfs at cfg.Root and makes it
// the root of the mount namespace, read-only but for /tmp and /dev/shm.
// The host's root is detached: nothing of it is left but what was bound.
func buildRoot(cfg *initConfig) error {
	// Nothing done here may reach the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, rootSize); err != nil {
		return fmt.Errorf("mount the root tmpfs: %w", err)
	}
	for _, p := range systemDirs {
		if err := mirror(root, p, false); err != nil {
			return err
		}
	}
	if err := writeEtc(root, cfg); err != nil {
		return err
	}
	for _, p := range etcPaths {
		if err := mirror(root, p, true); err != nil {
			return err
		}
	}
	// Made before the overlays, which take it as their empty lower dir
	// (see shower): proc is mounted over it after, and nothing can be
	// written under a mount.
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
		return err
	}
	sh, err := newShower(root, proc, cfg.Overlay)
	if err != nil {
		return err
	}
	err = showDirs(root, cfg, sh)
	if err = errors.Join(err, sh.close()); err != nil {
		return err
	}
	// A fresh proc of the new PID namespace: only the sandbox's processes,
	// and of those only the user's own (hidepid).
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=2"); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := maskProc(proc); err != nil {
		return err
	}
	if err := buildDev(root, min(cfg.TmpMB, shmMaxMB)); err != nil {
		return err
	}
	if err := pivot(root); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

// maskProc hides maskedProc in the proc mounted at proc; those this
// kernel does not have are skipped.
func maskProc(proc string) error {
	for _, name := range maskedProc {
		p := filepath.Join(proc, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask /proc/%s: %w", name, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,nr_inodes=1,mode=0555")
		} else {
			// Left writable, as /dev/null is: what is written goes nowhere.
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask /proc/%s: %w", name, err)
		}
	}
	return nil
}

// roDir holds the mounts of the read-only dirs that have no place in the
// sandbox's root: each is shown at its own path through a symlink, so
// that its mount point, which mountinfo shows, is not the host's path.
const roDir = "/var/ro"

// showDirs shows the code, the runtime and the read-only paths, and
// makes the private /tmp.
func showDirs(root string, cfg *initConfig, sh *shower) error {
	for _, d := range []struct{ host, inside string }{{cfg.CodeDir, TaskDir}, {cfg.RuntimeDir, RuntimeDir}} {
		dst := filepath.Join(root, d.inside)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if d.host == "" {
			continue
		}
		if err := sh.dir(d.host, dst); err != nil {
			return err
		}
	}
	tmp := filepath.Join(root, "tmp")
	if err := mountTmpfs(tmp, unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%dm,mode=1777", cfg.TmpMB)); err != nil {
		return err
	}
	for i, p := range cfg.ReadOnly {
		// After /tmp, which would hide one there. Resolved by the node: no
		// symlink on the way to lead outside.
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("read-only path: %w", err)
		}
		dst := filepath.Join(root, p)
		switch _, err := os.Lstat(dst); {
		case !fi.IsDir():
			// A file is bound: its path shows in mountinfo.
			err = bindRO(p, dst, false)
		case err == nil || !sh.overlay:
			// Inside a dir shown already (a system dir), or without
			// overlays: mounted at its own path.
			err = sh.dir(p, dst)
		default:
			err = sh.relocated(p, dst, filepath.Join(roDir, strconv.Itoa(i)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// shower shows host dirs read-only in the sandbox. With overlays, each is
// a read-only overlayfs of its own, whose root in mountinfo is "/", not
// the dir's path on the host as a bind's would be, and whose lower dirs
// are named by descriptor (/proc/self/fd/N, of the host's proc), so the
// options mountinfo prints do not name them either. A read-only overlay
// needs two lower dirs: the second is an empty dir that must stay empty,
// and alive (a removed one empties every merged dir's listing). Without
// overlays (a kernel without overlayfs), dirs are bound.
type shower struct {
	root    string
	overlay bool
	emptyFD int // the empty lower dir
}

// newShower returns a shower of dirs into root; empty is an empty dir
// that stays so while the overlays are mounted.
func newShower(root, empty string, overlay bool) (*shower, error) {
	sh := &shower{root: root, overlay: overlay, emptyFD: -1}
	if !overlay {
		return sh, nil
	}
	fd, err := unix.Open(empty, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("the empty lower dir: %w", err)
	}
	sh.emptyFD = fd
	return sh, nil
}

// dir shows the host dir src at dst, made if missing.
func (sh *shower) dir(src, dst string) error {
	if !sh.overlay {
		return bindRO(src, dst, true)
	}
	if err := mountPoint(dst, true); err != nil {
		return err
	}
	fd, err := unix.Open(src, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mount %s read-only: %w", src, err)
	}
	defer unix.Close(fd) //nolint:errcheck // an O_PATH descriptor: nothing to flush
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("mount %s read-only: %w", src, err)
	}
	// The source's noexec is kept, as a bind keeps it; overlayfs would not.
	flags := unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | uintptr(st.Flags)&unix.MS_NOEXEC
	opts := fmt.Sprintf("lowerdir=/proc/self/fd/%d:/proc/self/fd/%d", fd, sh.emptyFD)
	if err := unix.Mount("overlay", dst, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount %s read-only: %w", src, err)
	}
	return nil
}

// relocated shows the host dir src at at, a path of the sandbox, and puts
// a symlink at dst leading there. The link is relative, so that it leads
// into the new root before the pivot as after.
func (sh *shower) relocated(src, dst, at string) error {
	if err := sh.dir(src, filepath.Join(sh.root, at)); err != nil {
		return err
	}
	inside := strings.TrimPrefix(dst, sh.root)
	target, err := filepath.Rel(filepath.Dir(inside), at)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// close closes the empty lower dir's descriptor; the overlays hold on to
// the dir.
func (sh *shower) close() error {
	if sh.emptyFD < 0 {
		return nil
	}
	err := unix.Close(sh.emptyFD)
	sh.emptyFD = -1
	return err
}

// probeOverlay says whether this kernel makes the overlays shower does,
// and shows a dir's files through one: in a tmpfs mounted at dir, in the
// caller's own mount namespace.
func probeOverlay(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, rootSize); err != nil {
		return fmt.Errorf("mount a tmpfs: %w", err)
	}
	src, empty, dst := filepath.Join(dir, "src"), filepath.Join(dir, "empty"), filepath.Join(dir, "dst")
	for _, d := range []string{src, empty} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(src, "file"), nil, 0o644); err != nil {
		return err
	}
	sh, err := newShower(dir, empty, true)
	if err != nil {
		return err
	}
	if err := errors.Join(sh.dir(src, dst), sh.close()); err != nil {
		return err
	}
	if names, err := os.ReadDir(dst); err != nil || len(names) != 1 || names[0].Name() != "file" {
		return fmt.Errorf("an overlay shows %v, %v; want the one file of its lower dir", names, err)
	}
	return nil
}

// writeEtc writes the sandbox's own /etc files.
func writeEtc(root string, cfg *initConfig) error {
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n"+
			"wisp:x:%d:%d:wisp:/tmp:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", cfg.UID, cfg.GID),
		"group":    fmt.Sprintf("root:x:0:\nwisp:x:%d:\nnogroup:x:65534:\n", cfg.GID),
		"hostname": hostname + "\n",
		"hosts":    "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if cfg.Network == "host" {
		// The host's names, over the fresh file.
		if err := mirror(root, "/etc/hosts", true); err != nil {
			return err
		}
	}
	return nil
}

// mirror shows the host's path p at the same path under root, read-only;
// a symlink is recreated as the same symlink unless follow. A path the
// host does not have is skipped, and so is a symlink already there (inside
// a dir bound before).
func mirror(root, p string, follow bool) error {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dst := filepath.Join(root, p)
	if fi.Mode()&fs.ModeSymlink == 0 {
		return bindRO(p, dst, fi.IsDir())
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// bindRO binds src at dst read-only, nosuid and nodev.
func bindRO(src, dst string, dir bool) error {
	if err := mountPoint(dst, dir); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return remount(dst, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV)
}

// remount sets flags on the bind mount at dst. A bind mount takes its
// flags from the bind, not its source, so they are set after it; the
// source's restrictions are kept, as a user namespace would insist.
func remount(dst string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return fmt.Errorf("remount %s: %w", dst, err)
	}
	// The ST_ flags of statfs equal the MS_ flags of mount.
	keep := uintptr(st.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|flags|keep, ""); err != nil {
		return fmt.Errorf("remount %s: %w", dst, err)
	}
	return nil
}

// mountPoint makes an empty dir or file at dst, unless something is
// there already (inside a dir bound before).
func mountPoint(dst string, dir bool) error {
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if dir {
		return os.Mkdir(dst, 0o755)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountTmpfs mounts a tmpfs at a new dir dst.
func mountTmpfs(dst string, flags uintptr, data string) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dst, "tmpfs", flags, data); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dst, err)
	}
	return nil
}

// buildDev makes a minimal /dev: the harmless devices bound from the host
// on a read-only nodev tmpfs (a bound device is reached through its own
// mount, which allows devices), a /dev/shm of shmMB, and the fd links.
func buildDev(root string, shmMB int) error {
	dev := filepath.Join(root, "dev")
	if err := mountTmpfs(dev, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, devSize); err != nil {
		return err
	}
	for _, name := range devices {
		src := filepath.Join("/dev", name)
		fi, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeCharDevice == 0 {
			return fmt.Errorf("%s is not a character device", src)
		}
		dst := filepath.Join(dev, name)
		if err := mountPoint(dst, false); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		if err := remount(dst, unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
			return err
		}
	}
	if err := mountTmpfs(filepath.Join(dev, "shm"), unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		fmt.Sprintf("size=%dm,mode=1777", shmMB)); err != nil {
		return err
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return remount(dev, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
}

// pivot makes root the root of the mount namespace and detaches the old
// one.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// With both "." the old root is stacked on the new one, and detached
	// from there: no dir is needed to park it in.
	err := unix.PivotRoot(".", ".")
	switch {
	case errors.Is(err, unix.EINVAL):
		// The host's root is the initramfs, which cannot be pivoted away
		// from: move the new root over it instead.
		if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move the root: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
	case err != nil:
		return fmt.Errorf("pivot_root: %w", err)
	default:
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach the host's root: %w", err)
		}
	}
	return unix.Chdir("/")
}
