// Package connlimit bounds the connections a server holds: a cap on all of
// them, a smaller one on connections that have not yet made an
// authenticated request, and a share of that per source address. A full
// cap does not simply turn new connections away: a new one makes room by
// closing an unauthenticated one, silent ones first and the oldest of a
// kind first (see pickLocked), so that a flood of held connections from
// one address cannot lock out health probes or authenticated callers from
// the same address. A connection whose request is being read or answered
// is spared while others can go (when only such are left, the new one
// takes the place of one from a source that holds more than its own, see
// fairLocked, or is turned away), and so is an authenticated one unless
// it is idle. The package also bounds how slowly a request body may arrive
// and an answer leave (http.go), and raises the process's descriptor limit
// (rlimit_*.go).
package connlimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits are a listener's caps. The zero value of a cap other than
// MaxConns means no cap of its own.
type Limits struct {
	// MaxConns caps the connections open at once; it must be at least 1.
	MaxConns int
	// MaxUnauthenticated caps the connections that have not yet made an
	// authenticated request (MarkAuthenticated); 0 means MaxConns.
	MaxUnauthenticated int
	// PerSource caps the unauthenticated connections of one source: an
	// IPv4 address, or an IPv6 /64 (what one host is usually given).
	// 0: none.
	PerSource int
	// ShedYoung, when only connections in a young request (see
	// youngConn) could make room for a new one, closes the oldest of them
	// rather than turning the new one away: an instance's runtime must get
	// in past whatever its function holds open.
	ShedYoung bool
}

// Check says what is wrong with the caps, if anything.
func (lim Limits) Check() error {
	switch {
	case lim.MaxConns < 1:
		return fmt.Errorf("connlimit: the connection cap %d must be at least 1", lim.MaxConns)
	case lim.MaxUnauthenticated < 0 || lim.MaxUnauthenticated > lim.MaxConns:
		return fmt.Errorf("connlimit: the cap on unauthenticated connections %d must be 0 to %d (the connection cap)",
			lim.MaxUnauthenticated, lim.MaxConns)
	case lim.PerSource < 0:
		return fmt.Errorf("connlimit: the per-source cap %d must not be negative", lim.PerSource)
	}
	return nil
}

// youngConn is how long a connection in a request is spared, while others
// can be closed instead: long enough for a quick answer such as /healthz
// on a loaded node, well under the header timeout that ends a slow sender.
const youngConn = time.Second

// shedReportEvery is how often shedding is logged: once per connection
// would let a flood flood the log too.
const shedReportEvery = time.Minute

// Listener is a net.Listener that holds its connections to Limits. Its
// ConnState must be the http.Server's ConnState, and ConnContext its
// ConnContext, so that it knows which connections are idle and handlers
// can mark them authenticated.
type Listener struct {
	net.Listener
	lim Limits
	log *slog.Logger

	mu         sync.Mutex
	open       int                      // guarded by mu: connections open
	unauth     connList                 // guarded by mu: unauthenticated connections, oldest first
	authed     connList                 // guarded by mu: authenticated connections, oldest first
	sources    map[netip.Prefix]*source // guarded by mu: unauthenticated connections by source
	shed       int                      // guarded by mu: connections closed to make room, since lastReport
	refused    int                      // guarded by mu: connections turned away, since lastReport
	lastReport time.Time                // guarded by mu
	// shedTotal and refusedTotal count since the start, for Stats.
	shedTotal, refusedTotal atomic.Int64
}

// source is the unauthenticated connections of one source address.
type source struct {
	conns connList
}

// NewListener holds ln's connections to lim. Caps that do not pass Check
// are taken as the nearest that do (check caps from outside first): a
// MaxConns under 1 as 1, a MaxUnauthenticated out of range as MaxConns, a
// negative PerSource as none.
func NewListener(ln net.Listener, lim Limits, log *slog.Logger) *Listener {
	lim.MaxConns = max(lim.MaxConns, 1)
	if lim.MaxUnauthenticated <= 0 || lim.MaxUnauthenticated > lim.MaxConns {
		lim.MaxUnauthenticated = lim.MaxConns
	}
	lim.PerSource = max(lim.PerSource, 0)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, lim: lim, log: log, sources: map[netip.Prefix]*source{}}
}

// Limits returns the listener's caps.
func (l *Listener) Limits() Limits { return l.lim }

// Stats is what a listener holds and has done.
type Stats struct {
	Open, Unauthenticated int
	// Shed counts connections closed to make room for newer ones;
	// Refused, new ones turned away because no open one could go.
	Shed, Refused int64
}

// Stats returns the listener's counts now.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Open: l.open, Unauthenticated: l.unauth.n, Shed: l.shedTotal.Load(), Refused: l.refusedTotal.Load()}
}

// Accept waits for a connection and admits it, closing another to make
// room if a cap is full. When the process is out of descriptors it closes
// an unauthenticated connection and tries again, rather than leaving the
// kernel's backlog (health probes included) unserved.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				if v := l.takeVictim(); v != nil {
					l.closeVictim(v)
					l.report()
					continue
				}
			}
			return nil, err
		}
		c, victim := l.admit(nc)
		if victim != nil {
			l.closeVictim(victim)
		}
		if c == nil {
			refuse(nc)
		}
		if victim != nil || c == nil {
			l.report()
		}
		if c != nil {
			return c, nil
		}
	}
}

// admit counts nc in, choosing a connection to close if a cap is full. It
// returns a nil Conn if no open connection may go for it: none does, or
// only young ones, not ShedYoung, and none of a source holding more than
// nc's (fairLocked). (Waiting for room instead would let
// one source's flood hold up every source's connections in the kernel's
// backlog.)
func (l *Listener) admit(nc net.Conn) (c *Conn, victim *Conn) {
	now := time.Now()
	c = &Conn{Conn: nc, l: l, since: now, src: sourceOf(nc.RemoteAddr())}
	l.mu.Lock()
	defer l.mu.Unlock()
	src := l.sources[c.src]
	full := true
	switch {
	case l.lim.PerSource > 0 && src != nil && src.conns.n >= l.lim.PerSource:
		victim = pickLocked(src.conns.head, bySource, now, l.lim.ShedYoung)
	case l.unauth.n >= l.lim.MaxUnauthenticated:
		if victim = pickLocked(l.unauth.head, byClass, now, l.lim.ShedYoung); victim == nil {
			victim = l.fairLocked(src)
		}
	case l.open >= l.lim.MaxConns:
		if victim = pickLocked(l.unauth.head, byClass, now, l.lim.ShedYoung); victim == nil {
			victim = idleLocked(l.authed.head)
		}
		if victim == nil {
			victim = l.fairLocked(src)
		}
	default:
		full = false
	}
	if full && victim == nil {
		l.refused++
		l.refusedTotal.Add(1)
		return nil, nil
	}
	if victim != nil {
		l.removeLocked(victim)
		l.shed++
		l.shedTotal.Add(1)
	}
	l.open++
	l.unauth.push(c, byClass)
	if src == nil {
		src = &source{}
		l.sources[c.src] = src
	}
	src.conns.push(c, bySource)
	return c, victim
}

// fairLocked chooses, when every unauthenticated connection is in a young
// request, one to close for a new connection from src anyway: the oldest
// of a source that holds more of them than src does. Sparing young
// requests otherwise would let a few sources that keep every connection
// in a fresh request (a request flood that never lets one age) lock every
// other source out, authenticated callers too, whose new connections
// start unauthenticated. A source gets in as long as another holds more;
// a source among those holding the most is turned away, as before.
func (l *Listener) fairLocked(src *source) *Conn {
	held := 0
	if src != nil {
		held = src.conns.n
	}
	n := 0
	for c := l.unauth.head; c != nil && n < pickScan; c, n = c.links[byClass].next, n+1 {
		if l.sources[c.src].conns.n > held {
			return c
		}
	}
	return nil
}

// takeVictim removes the connection that would be closed first to make
// room, if there is one that may go.
func (l *Listener) takeVictim() *Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	v := pickLocked(l.unauth.head, byClass, now, l.lim.ShedYoung)
	if v == nil {
		v = idleLocked(l.authed.head)
	}
	if v != nil {
		l.removeLocked(v)
		l.shed++
		l.shedTotal.Add(1)
	}
	return v
}

// closeVictim closes a connection removed to make room.
func (l *Listener) closeVictim(v *Conn) {
	if err := v.Conn.Close(); err != nil {
		l.log.Debug("connlimit: closing a connection to make room", "err", err)
	}
}

// report logs, now and then, the connections closed and turned away.
func (l *Listener) report() {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.lastReport) < shedReportEvery {
		l.mu.Unlock()
		return
	}
	shed, refused := l.shed, l.refused
	l.shed, l.refused, l.lastReport = 0, 0, now
	open, unauth := l.open, l.unauth.n
	l.mu.Unlock()
	l.log.Warn("connections closed to stay under the caps", "addr", l.Addr().String(),
		"closed", shed, "refused", refused, "open", open, "unauthenticated", unauth,
		"max_conns", l.lim.MaxConns, "max_unauthenticated", l.lim.MaxUnauthenticated, "per_source", l.lim.PerSource,
		"since", shedReportEvery)
}

// refusal is the answer of a connection turned away: every open one that
// could make room for it is authenticated and busy, or young.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\nContent-Length: 21\r\n\r\ntoo many connections\n"

// refuseWait bounds the write of the refusal; it goes to an empty socket
// buffer, so it only waits on a broken connection.
const refuseWait = 100 * time.Millisecond

func refuse(nc net.Conn) {
	nc.SetWriteDeadline(time.Now().Add(refuseWait)) //nolint:errcheck // closed just below either way
	nc.Write([]byte(refusal))                       //nolint:errcheck // the client may be gone
	nc.Close()                                      //nolint:errcheck // nothing to do about it
}

// removeLocked takes c out of the counts and lists, once.
func (l *Listener) removeLocked(c *Conn) {
	if c.gone {
		return
	}
	c.gone = true
	l.open--
	if c.authed.Load() {
		l.authed.remove(c, byClass)
		return
	}
	l.unauth.remove(c, byClass)
	l.dropSourceLocked(c)
}

func (l *Listener) dropSourceLocked(c *Conn) {
	src := l.sources[c.src]
	src.conns.remove(c, bySource)
	if src.conns.n == 0 {
		delete(l.sources, c.src)
	}
}

// authenticate moves c among the authenticated connections.
func (l *Listener) authenticate(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.gone || c.authed.Load() {
		return
	}
	l.unauth.remove(c, byClass)
	l.dropSourceLocked(c)
	l.authed.push(c, byClass)
	c.authed.Store(true)
}

// pickLocked chooses which connection of a list (oldest first) to close
// for a new one:
//
//  1. the oldest that has sent nothing for silentGrace since it opened
//     (one that sends nothing costs the node what one that never will
//     does; a flood's connections are these);
//  2. else the oldest idle after a request, since it was served;
//  3. else the oldest that has sent nothing yet, however new: a flood
//     that opens connections faster than they age must not lock callers
//     out, and the newest, a caller's request in flight, goes last;
//  4. else the oldest in a request for youngConn or more (a slow body);
//  5. else, with ShedYoung, the oldest in a request.
//
// A connection whose request is young (being read or answered) is spared
// otherwise. The list is in the order connections opened, so the first
// silent one met is the oldest: in a flood the head, and the scan ends
// there; it looks at pickScan connections at most.
func pickLocked(head *Conn, k int, now time.Time, shedYoung bool) *Conn {
	var silent, idle, stale, young *Conn
	n := 0
	for c := head; c != nil && n < pickScan; c, n = c.links[k].next, n+1 {
		switch http.ConnState(c.state.Load()) {
		case http.StateNew:
			if silent == nil {
				if now.Sub(c.since) >= silentGrace {
					return c
				}
				silent = c
			}
		case http.StateIdle:
			idle = cmp.Or(idle, c)
		default:
			if c.young(now) {
				young = cmp.Or(young, c)
			} else {
				stale = cmp.Or(stale, c)
			}
		}
	}
	if v := cmp.Or(idle, silent, stale); v != nil || !shedYoung {
		return v
	}
	return young
}

// silentGrace is how long a new connection may take to send its first
// request before it counts as silent (a client sends it with the
// handshake's last packet, so one round trip of most links). Short,
// because a flood that reopens what the node closes keeps its connections
// young: they must still count as silent before an idle keep-alive
// connection counts as served, or callers' connections go for the flood's.
const silentGrace = 50 * time.Millisecond

// pickScan bounds the connections one pick looks at.
const pickScan = 1024

// idleLocked returns the oldest idle connection of an authenticated list.
func idleLocked(head *Conn) *Conn {
	for c := head; c != nil; c = c.links[byClass].next {
		if http.ConnState(c.state.Load()) == http.StateIdle {
			return c
		}
	}
	return nil
}

// sourceOf is the source a connection counts against.
func sourceOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Conn is a connection a Listener counts.
type Conn struct {
	net.Conn
	l     *Listener
	since time.Time    // when it was accepted
	src   netip.Prefix // the source it counts against
	// state is its http.ConnState, as the server's ConnState hook says,
	// and activeAt when it last went active (Unix ns).
	state    atomic.Int32
	activeAt atomic.Int64
	authed   atomic.Bool // written under l.mu; read without it

	gone  bool        // guarded by l.mu: no longer counted
	links [2]struct { // guarded by l.mu: its places in l's lists
		prev, next *Conn
	}
}

// young says whether c is within youngConn of the start of the request
// it is in.
func (c *Conn) young(now time.Time) bool {
	return http.ConnState(c.state.Load()) == http.StateActive && now.UnixNano()-c.activeAt.Load() < int64(youngConn)
}

// Close closes the connection and stops counting it.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.removeLocked(c)
	c.l.mu.Unlock()
	return err
}

// ConnState is the http.Server's ConnState hook the listener needs.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	if c, ok := nc.(*Conn); ok {
		if s == http.StateActive {
			c.activeAt.Store(time.Now().UnixNano())
		}
		c.state.Store(int32(s))
	}
}

// connKey is the request context's key to the *Conn.
type connKey struct{}

// ConnContext is the http.Server's ConnContext hook that lets handlers
// mark a connection authenticated.
func ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c, ok := nc.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// MarkAuthenticated says that a request on the connection of ctx (a
// request's context) passed authentication: the connection no longer
// counts against the caps on unauthenticated connections, nor is it
// closed to make room for them. It costs an atomic load once done; it does
// nothing on a connection of no Listener.
func MarkAuthenticated(ctx context.Context) {
	c, ok := ctx.Value(connKey{}).(*Conn)
	if !ok || c.authed.Load() {
		return
	}
	c.l.authenticate(c)
}

// Which of a Conn's links a list uses.
const (
	byClass  = 0 // the listener's unauth or authed list
	bySource = 1 // its source's list
)

// connList is a doubly linked list of Conns through one of their links,
// oldest first.
type connList struct {
	head, tail *Conn
	n          int
}

func (ls *connList) push(c *Conn, k int) {
	c.links[k].prev, c.links[k].next = ls.tail, nil
	if ls.tail != nil {
		ls.tail.links[k].next = c
	} else {
		ls.head = c
	}
	ls.tail = c
	ls.n++
}

func (ls *connList) remove(c *Conn, k int) {
	prev, next := c.links[k].prev, c.links[k].next
	if prev != nil {
		prev.links[k].next = next
	} else {
		ls.head = next
	}
	if next != nil {
		next.links[k].prev = prev
	} else {
		ls.tail = prev
	}
	c.links[k].prev, c.links[k].next = nil, nil
	ls.n--
}
