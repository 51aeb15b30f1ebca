//go:build !unix

package store

import "errors"

func diskSpace(string) (free, total int64, err error) {
	return 0, 0, errors.New("store: free space is not known on this system")
}
