package connlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testServer serves on a Listener with lim: / answers ok, /auth marks
// the connection authenticated, /hold marks it and waits for release.
type testServer struct {
	l       *Listener
	srv     *http.Server
	release chan struct{}
	held    chan struct{}
	// states gets every ConnState change, for tests to wait on.
	states chan http.ConnState
}

func newTestServer(t *testing.T, lim Limits) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, lim)
}

// serveOn is newTestServer on ln.
func serveOn(t *testing.T, ln net.Listener, lim Limits) *testServer {
	t.Helper()
	l := NewListener(ln, lim, nil)
	s := &testServer{l: l, release: make(chan struct{}), held: make(chan struct{}, 16), states: make(chan http.ConnState, 1024)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		MarkAuthenticated(r.Context())
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		MarkAuthenticated(r.Context())
		s.held <- struct{}{}
		<-s.release
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/hold-anon", func(w http.ResponseWriter, r *http.Request) {
		s.held <- struct{}{}
		<-s.release
		io.WriteString(w, "ok")
	})
	s.srv = &http.Server{Handler: mux, ConnContext: ConnContext, ConnState: func(c net.Conn, st http.ConnState) {
		l.ConnState(c, st)
		select {
		case s.states <- st:
		default:
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); s.srv.Serve(l) }()
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
		<-done
	})
	return s
}

// waitState waits for n ConnState changes to st.
func (s *testServer) waitState(t *testing.T, st http.ConnState, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case got := <-s.states:
			if got == st {
				n--
			}
		case <-timeout:
			t.Fatalf("the server did not see %d more connections go %v", n, st)
		}
	}
}

// client is one raw connection to the server.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *testServer) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// get sends GET path on the connection and returns the answer's status
// and body, or the error that ended the connection.
func (c *client) get(path string) (int, string, error) {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, "", err
	}
	return c.answer()
}

func (c *client) answer() (int, string, error) {
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// closed reports whether the server closed the connection: a read ends
// with EOF or a reset rather than data or the deadline.
func (c *client) closed(t *testing.T) bool {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func mustGet(t *testing.T, c *client, path string) {
	t.Helper()
	code, body, err := c.get(path)
	if err != nil || code != http.StatusOK || body != "ok" {
		t.Fatalf("GET %s: %d %q %v", path, code, body, err)
	}
}

func TestLimitsCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  Limits
		ok   bool
	}{
		{"ok", Limits{MaxConns: 10, MaxUnauthenticated: 5, PerSource: 2}, true},
		{"only total", Limits{MaxConns: 1}, true},
		{"no total", Limits{MaxUnauthenticated: 5}, false},
		{"unauthenticated over total", Limits{MaxConns: 4, MaxUnauthenticated: 5}, false},
		{"negative unauthenticated", Limits{MaxConns: 4, MaxUnauthenticated: -1}, false},
		{"negative per source", Limits{MaxConns: 4, PerSource: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.lim.Check(); (err == nil) != tc.ok {
				t.Errorf("Check: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestPerSourceShedsOldestIdle: a source over its share loses its oldest
// idle connection to a new one; its others keep working.
func TestPerSourceShedsOldestIdle(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 8, PerSource: 3})
	var cs []*client
	for range 3 {
		c := dial(t, s)
		mustGet(t, c, "/")
		cs = append(cs, c)
	}
	s.waitState(t, http.StateIdle, 3)
	d := dial(t, s)
	mustGet(t, d, "/")
	if !cs[0].closed(t) {
		t.Fatal("the oldest idle connection is still open")
	}
	for _, c := range append(cs[1:], d) {
		mustGet(t, c, "/")
	}
	if st := s.l.Stats(); st.Open != 3 || st.Shed != 1 {
		t.Errorf("stats %+v, want 3 open, 1 shed", st)
	}
}

// TestSilentGoesBeforeServed: a connection that has sent nothing for a
// while is closed before one idle after its request, even a newer one:
// under a flood of silent connections, clients that keep theirs alive
// between calls keep them. One that has just opened goes after the idle
// one: its request may be in flight.
func TestSilentGoesBeforeServed(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 8, PerSource: 2})
	served := dial(t, s)
	mustGet(t, served, "/")
	s.waitState(t, http.StateIdle, 1)
	silent := dial(t, s)
	s.waitState(t, http.StateNew, 1)
	time.Sleep(silentGrace)
	late := dial(t, s)
	mustGet(t, late, "/")
	if !silent.closed(t) {
		t.Fatal("the silent connection is still open")
	}
	mustGet(t, served, "/")

	fresh := dial(t, s) // at once: the served idle one goes for it
	mustGet(t, fresh, "/")
	if st := s.l.Stats(); st.Shed != 2 || st.Refused != 0 {
		t.Errorf("stats %+v, want 2 shed", st)
	}
}

// TestAuthenticatedStay: a flood of unauthenticated connections never
// closes an authenticated one, and never holds more than its cap.
func TestAuthenticatedStay(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 6, MaxUnauthenticated: 3})
	a := dial(t, s)
	mustGet(t, a, "/auth")
	s.waitState(t, http.StateIdle, 1)
	for range 40 {
		c := dial(t, s)
		mustGet(t, c, "/")
		s.waitState(t, http.StateIdle, 1)
		if st := s.l.Stats(); st.Unauthenticated > 3 || st.Open > 4 {
			t.Fatalf("stats %+v: over the caps", st)
		}
	}
	mustGet(t, a, "/auth")
	if st := s.l.Stats(); st.Shed != 37 || st.Refused != 0 {
		t.Errorf("stats %+v, want 37 shed, none refused", st)
	}
}

// TestSilentGoFirst: connections that have sent nothing are closed for
// newer ones whatever their age, the oldest first, so that a flood that
// opens connections faster than any grows old cannot lock a caller out.
func TestSilentGoFirst(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 8, PerSource: 2})
	first, second := dial(t, s), dial(t, s)
	s.waitState(t, http.StateNew, 2)
	third := dial(t, s) // before the two are silentGrace old: they go anyway, the oldest first
	mustGet(t, third, "/")
	if !first.closed(t) {
		t.Fatal("the oldest silent connection is still open")
	}
	mustGet(t, second, "/")
	if st := s.l.Stats(); st.Refused != 0 || st.Shed != 1 {
		t.Errorf("stats %+v, want 1 shed, none refused", st)
	}
}

// TestYoungRequestsSpared: connections whose request is young (being read
// or answered) are not closed for newer ones: a newer one is turned away,
// unless the listener sheds young ones.
func TestYoungRequestsSpared(t *testing.T) {
	for _, shedYoung := range []bool{false, true} {
		t.Run(fmt.Sprint("shed young ", shedYoung), func(t *testing.T) {
			s := newTestServer(t, Limits{MaxConns: 8, PerSource: 2, ShedYoung: shedYoung})
			var holders []*client
			for range 2 {
				c := dial(t, s)
				io.WriteString(c.c, "GET /hold-anon HTTP/1.1\r\nHost: x\r\n\r\n")
				<-s.held
				holders = append(holders, c)
			}
			third := dial(t, s)
			if !shedYoung {
				third.c.SetDeadline(time.Now().Add(10 * time.Second))
				if code, body, err := third.answer(); err != nil || code != http.StatusServiceUnavailable {
					t.Fatalf("a connection past two young requests: %d %q %v, want 503", code, body, err)
				}
				if st := s.l.Stats(); st.Refused != 1 || st.Shed != 0 {
					t.Errorf("stats %+v, want 1 refused", st)
				}
				return
			}
			if !holders[0].closed(t) {
				t.Fatal("the oldest young request's connection is still open")
			}
			s.release <- struct{}{} // the one closed may have taken it
			mustGet(t, third, "/")
		})
	}
}

// TestRefusedWhenAllBusy: when every connection is authenticated and in
// a request, a new one is answered 503 and closed.
func TestRefusedWhenAllBusy(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 2})
	var holders []*client
	for range 2 {
		c := dial(t, s)
		io.WriteString(c.c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		<-s.held
		holders = append(holders, c)
	}
	c := dial(t, s)
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	code, body, err := c.answer()
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections") {
		t.Fatalf("a connection over the cap: %d %q %v, want 503", code, body, err)
	}
	if st := s.l.Stats(); st.Refused != 1 || st.Open != 2 {
		t.Errorf("stats %+v, want 1 refused, 2 open", st)
	}
	s.release <- struct{}{}
	s.release <- struct{}{}
	for _, h := range holders {
		if code, _, err := h.answer(); err != nil || code != http.StatusOK {
			t.Errorf("a held request: %d %v", code, err)
		}
	}
}

// TestConcurrentChurn: connections that come, authenticate and go from
// many goroutines at once keep the counts right (run with -race).
func TestConcurrentChurn(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 20, MaxUnauthenticated: 10, PerSource: 5})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 30 {
				c, err := net.Dial("tcp", s.l.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				cl := &client{c: c, r: bufio.NewReader(c)}
				path := "/"
				if (i+j)%3 == 0 {
					path = "/auth"
				}
				cl.get(path) //nolint:errcheck // it may be shed: what counts is the counts
				c.Close()
			}
		}()
	}
	wg.Wait()
	s.srv.Close()
	if st := s.l.Stats(); st.Open != 0 || st.Unauthenticated != 0 {
		t.Errorf("after every connection closed: %+v", st)
	}
}

// emfileListener fails its next Accept as a process out of descriptors
// does, when told to.
type emfileListener struct {
	net.Listener
	fail atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fail.Swap(false) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestOutOfDescriptors: when accept fails for want of descriptors, the
// oldest idle unauthenticated connection is closed to free one, and
// accepting goes on at once rather than backing off.
func TestOutOfDescriptors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inner := &emfileListener{Listener: ln}
	s := serveOn(t, inner, Limits{MaxConns: 10})
	old, other := dial(t, s), dial(t, s)
	mustGet(t, old, "/")
	mustGet(t, other, "/")
	s.waitState(t, http.StateIdle, 2)
	inner.fail.Store(true)
	late := dial(t, s)
	mustGet(t, late, "/")
	if !old.closed(t) {
		t.Fatal("no connection was closed for the one the descriptors ran out for")
	}
	mustGet(t, other, "/")
	if st := s.l.Stats(); st.Shed != 1 {
		t.Errorf("stats %+v, want 1 shed", st)
	}
}

// dialFrom is dial from a source address of the loopback network.
func dialFrom(t *testing.T, s *testServer, ip string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Skipf("no connection from %s (%v): this test needs the loopback network's other addresses", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// TestYoungFloodLeavesOthersIn: sources that keep every unauthenticated
// connection in a young request do not lock other sources out; a source
// that already holds the most is turned away.
func TestYoungFloodLeavesOthersIn(t *testing.T) {
	s := newTestServer(t, Limits{MaxConns: 8, MaxUnauthenticated: 4})
	var flood []*client
	for _, ip := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"} {
		c := dialFrom(t, s, ip)
		io.WriteString(c.c, "GET /hold-anon HTTP/1.1\r\nHost: x\r\n\r\n")
		<-s.held
		flood = append(flood, c)
	}
	greedy := dialFrom(t, s, "127.0.0.2")
	greedy.c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(greedy.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if code, body, err := greedy.answer(); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("a connection from the source that holds the most: %d %q %v, want 503", code, body, err)
	}
	other := dialFrom(t, s, "127.0.0.4")
	mustGet(t, other, "/")
	if !flood[0].closed(t) {
		t.Fatal("the oldest young request of the biggest source is still open")
	}
	if st := s.l.Stats(); st.Shed != 1 || st.Refused != 1 {
		t.Errorf("stats %+v, want 1 shed, 1 refused", st)
	}
}
