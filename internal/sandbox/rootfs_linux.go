package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
	for _, d := range []struct{ host, inside string }{{cfg.CodeDir, TaskDir}, {cfg.RuntimeDir, RuntimeDir}} {
		dst := filepath.Join(root, d.inside)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if d.host == "" {
			continue
		}
		if err := bindRO(d.host, dst, true); err != nil {
			return err
		}
	}
	tmp := filepath.Join(root, "tmp")
	if err := mountTmpfs(tmp, unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%dm,mode=1777", cfg.TmpMB)); err != nil {
		return err
	}
	for _, p := range cfg.ReadOnly {
		// After /tmp, which would hide one there. Resolved by the node: no symlink on the way to lead outside.
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("read-only path: %w", err)
		}
		if err := bindRO(p, filepath.Join(root, p), fi.IsDir()); err != nil {
			return err
		}
	}
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
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
