//go:build !unix

package connlimit

// RaiseFileLimit does nothing where there is no descriptor limit to
// raise; 0 means the limit is not known.
func RaiseFileLimit() (uint64, error) { return 0, nil }
