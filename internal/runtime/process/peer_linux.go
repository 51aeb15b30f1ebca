package process

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
)

// peerListener accepts only connections made by the instance's own
// processes. An instance on the host's network serves its Runtime API on a
// host loopback port that every local process can reach; without this,
// another function could take its invocations.
type peerListener struct {
	net.Listener
	owner func() ([]int, error) // the instance's processes, host pids
	log   *slog.Logger
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.check(c); err != nil {
			l.log.Warn("process: refused a Runtime API connection from outside the instance",
				"remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			continue
		}
		return c, nil
	}
}

// check finds the socket at the other end of c in /proc/net/tcp and looks
// for it among the open files of the instance's processes.
func (l *peerListener) check(c net.Conn) error {
	inode, err := peerInode(c)
	if err != nil {
		return err
	}
	pids, err := l.owner()
	if err != nil {
		return err
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, e := range ents {
			if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && link == want {
				return nil
			}
		}
	}
	return fmt.Errorf("socket %d belongs to no process of the instance", inode)
}

// peerInode returns the inode of the socket whose local end is c's remote
// end and whose remote end is c's local end (IPv4 loopback).
func peerInode(c net.Conn) (uint64, error) {
	local, lok := c.LocalAddr().(*net.TCPAddr)
	remote, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok || remote.IP.To4() == nil || local.IP.To4() == nil {
		return 0, fmt.Errorf("not an IPv4 TCP connection")
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	peerLocal, peerRemote := procNetAddr(remote), procNetAddr(local)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1] != peerLocal || fields[2] != peerRemote {
			continue
		}
		return strconv.ParseUint(fields[9], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no socket %s→%s in /proc/net/tcp", remote, local)
}

// procNetAddr writes an address as /proc/net/tcp does: the IPv4 address as
// a little-endian hex word, the port in hex.
func procNetAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
}
