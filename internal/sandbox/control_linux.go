package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The control socket is a SOCK_SEQPACKET socketpair: one JSON message per
// packet, file descriptors riding along as SCM_RIGHTS. The node sends one
// initConfig; the init answers with one report of kind "started" or
// "error", then one of kind "exit" before it exits.

// controlFD is where the init finds its end of the control socket.
const controlFD = 3

// Bounds of one control message: the configuration (mostly the runtime's
// environment), and a report.
const (
	maxConfig = 1 << 20
	maxReport = 64 << 10
)

// initConfig is what the init is told to do.
type initConfig struct {
	// Probe asks only for a "started" answer, from PID 1 of new namespaces,
	// saying whether overlays can be mounted (in a tmpfs at Root).
	Probe      bool     `json:"probe,omitempty"`
	Root       string   `json:"root"` // the host dir the new root is mounted on
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	Dir        string   `json:"dir"`
	CodeDir    string   `json:"code_dir,omitempty"`
	RuntimeDir string   `json:"runtime_dir,omitempty"`
	ReadOnly   []string `json:"read_only,omitempty"`
	TmpMB      int      `json:"tmp_mb"`
	Network    string   `json:"network"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	// Overlay shows dirs as overlays rather than binds (see shower).
	Overlay bool `json:"overlay,omitempty"`
}

// Kinds of report.
const (
	reportStarted = "started" // the runtime runs; listener fds may ride along
	reportError   = "error"   // setting up failed; the init exits
	reportExit    = "exit"    // the runtime exited; the init exits
)

// report is what the init tells the node.
type report struct {
	Kind   string `json:"kind"`
	Error  string `json:"error,omitempty"`
	Code   int    `json:"code,omitempty"`
	Signal int    `json:"signal,omitempty"`
	// NoOverlay, in a probe's answer, says why overlays cannot be had.
	NoOverlay string `json:"no_overlay,omitempty"`
}

// socketpair returns the two ends of a new control socket, both
// close-on-exec.
func socketpair() (node *net.UnixConn, init *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	init = os.NewFile(uintptr(fds[1]), "sandbox-control")
	node, err = fileConn(os.NewFile(uintptr(fds[0]), "sandbox-control"))
	if err != nil {
		return nil, nil, errors.Join(err, init.Close())
	}
	return node, init, nil
}

// fileConn turns f into a connection and closes f.
func fileConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.Join(fmt.Errorf("control socket: a %T", c), c.Close())
	}
	return uc, nil
}

// send writes v as one message, with files attached if any.
func send(c *net.UnixConn, v any, files ...*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

// receive reads one message of at most size bytes into v and returns the
// files that came with it, close-on-exec. At the peer's end it returns
// errEOF.
func receive(c *net.UnixConn, v any, size int) ([]*os.File, error) {
	buf := make([]byte, size)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	files, ferr := rights(oob[:oobn])
	switch {
	// A reset: the peer closed with a message of ours unread.
	case errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || err == nil && n == 0 && oobn == 0:
		err = errEOF
	case err != nil:
		err = fmt.Errorf("control socket: %w", err)
	}
	if err == nil {
		err = ferr
	}
	if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		err = errors.New("control socket: message truncated")
	}
	if err == nil {
		if err = json.Unmarshal(buf[:n], v); err != nil {
			err = fmt.Errorf("control socket: %w", err)
		}
	}
	if err != nil {
		for _, f := range files {
			err = errors.Join(err, f.Close())
		}
		return nil, err
	}
	return files, nil
}

// errEOF is a zero-length read: on a SOCK_SEQPACKET socket, the peer
// closed its end.
var errEOF = errors.New("control socket: closed by the peer")

// rights returns the files passed in oob.
func rights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var files []*os.File
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue // not SCM_RIGHTS
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd) // already, by MSG_CMSG_CLOEXEC; to be sure
			files = append(files, os.NewFile(uintptr(fd), "sandbox-listener"))
		}
	}
	return files, nil
}
