package connlimit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyRate: a body that trickles in below the minimum rate is cut
// off once the grace has passed; one well above it, taking longer than
// the grace and the write timeout together, is read whole and answered.
func TestBodyRate(t *testing.T) {
	rt := Rates{MinRate: 1 << 10, BodyGrace: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 1)
	srv := httptest.NewUnstartedServer(rt.BodyRate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		results <- result{int(n), err}
		fmt.Fprint(w, n)
	})))
	srv.Config.WriteTimeout = rt.WriteTimeout
	srv.Start()
	defer srv.Close()

	t.Run("trickle", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
		// A byte every 50 ms is 20 B/s, 50 times too slow; it goes on
		// until the server hangs up.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		select {
		case res := <-results:
			if res.err == nil || res.n >= 100000 {
				t.Fatalf("the trickled body was read: %d bytes, %v", res.n, res.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the trickled body was never cut off")
		}
	})

	t.Run("steady", func(t *testing.T) {
		// 64 KiB/s, 64 times the minimum, for about a second: past the
		// grace and the write timeout both.
		const chunk, chunks = 4 << 10, 16
		pr, pw := io.Pipe()
		go func() {
			for range chunks {
				pw.Write([]byte(strings.Repeat("y", chunk)))
				time.Sleep(time.Second / 16)
			}
			pw.Close()
		}()
		req, err := http.NewRequest("POST", srv.URL, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = chunk * chunks
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if string(b) != fmt.Sprint(chunk*chunks) {
			t.Errorf("answer %q, want %d", b, chunk*chunks)
		}
		if r := <-results; r.err != nil {
			t.Errorf("reading the steady body: %v", r.err)
		}
	})
}
