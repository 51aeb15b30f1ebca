//go:build unix

package store

import "golang.org/x/sys/unix"

// diskSpace returns the free and total bytes of the filesystem dir is on,
// as an unprivileged writer sees them.
func diskSpace(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
