package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// streamer is an app whose responses flow until something ends them:
// /events is a server-sent event stream (an event every 100 ms, forever),
// /download a download that never finishes (64 KiB every 100 ms of a
// Content-Length of 1 GiB), /upload/... takes an upload to its end and
// signals its first bytes, /wait/... signals the request and never
// answers. Anything else is a small page.
type streamer struct {
	*httptest.Server
	mu      sync.Mutex
	arrived map[string]chan struct{} // by path: closed when its request (body) arrived
}

func newStreamer(t *testing.T) *streamer {
	st := &streamer{arrived: map[string]chan struct{}{}}
	st.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		switch {
		case r.URL.Path == "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: tick %d\n\n", i); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
			}
		case r.URL.Path == "/download":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
			}
		case strings.HasPrefix(r.URL.Path, "/upload/"):
			b := make([]byte, 1)
			if _, err := io.ReadFull(r.Body, b); err != nil {
				return
			}
			st.signal(r.URL.Path)
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return
			}
			fmt.Fprintf(w, "got %d bytes\n", n+1)
			return
		case strings.HasPrefix(r.URL.Path, "/wait/"):
			st.signal(r.URL.Path)
			<-r.Context().Done()
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(st.Close)
	return st
}

// expect returns what closes when a request for path arrives.
func (st *streamer) expect(path string) chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	ch := make(chan struct{})
	st.arrived[path] = ch
	return ch
}

func (st *streamer) signal(path string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ch, ok := st.arrived[path]; ok {
		close(ch)
		delete(st.arrived, path)
	}
}

// openStream is a response being read by a client: started closes once
// the first bytes of the body arrived, ended when reading it stopped, with
// err saying how (nil or io.EOF: the response ended cleanly).
type openStream struct {
	name    string
	started chan struct{}
	ended   chan struct{}
	endAt   time.Time
	err     error
	raw     *bytes.Buffer // what a raw HTTP/1.1 connection received
	chunked bool
	body    bool // err is of reading the body, where io.EOF is a clean end
}

// read reads the body of resp until it ends, and records how.
func (s *openStream) read(resp *http.Response) {
	defer close(s.ended)
	if resp.StatusCode != http.StatusOK {
		s.err = fmt.Errorf("status %d", resp.StatusCode)
		return
	}
	s.chunked, s.body = len(resp.TransferEncoding) > 0, true
	buf := make([]byte, 32<<10)
	first := true
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && first {
			first = false
			close(s.started)
		}
		if err != nil {
			s.endAt, s.err = time.Now(), err
			return
		}
	}
}

// openRaw sends GET path on a raw HTTP/1.1 TLS connection with the
// client's cookies for wikiHost and reads the response with Go's strict
// parser, keeping every byte that arrived.
func openRaw(t *testing.T, g *testenv.Gateway, c *http.Client, path string) *openStream {
	t.Helper()
	u, _ := url.Parse(g.URL(wikiHost, "/"))
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	conn, err := tls.Dial("tcp", g.Addr(), g.TLSConfig(wikiHost))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n", path, wikiHost, strings.Join(cookies, "; "))
	s := &openStream{name: "HTTP/1.1 " + path, started: make(chan struct{}), ended: make(chan struct{}), raw: &bytes.Buffer{}}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(conn, s.raw)), nil)
		if err != nil {
			s.endAt, s.err = time.Now(), err
			close(s.ended)
			return
		}
		s.read(resp)
	}()
	return s
}

// openH2 sends GET path with c over HTTP/2.
func openH2(t *testing.T, g *testenv.Gateway, c *http.Client, path string) *openStream {
	t.Helper()
	resp, err := c.Get(g.URL(wikiHost, path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s over %s, want HTTP/2", path, resp.Proto)
	}
	s := &openStream{name: "HTTP/2 " + path, started: make(chan struct{}), ended: make(chan struct{})}
	go s.read(resp)
	return s
}

// openCall sends a request for path with client and waits for its answer
// in the background: started closes when the app has the request (and
// the first bytes of its body, if it has one), ended when the client has
// its answer or an error. Any answer but a failure or an error status is
// a clean end.
func openCall(t *testing.T, st *streamer, g *testenv.Gateway, client *http.Client, method, path string, body io.Reader) *openStream {
	t.Helper()
	s := &openStream{name: method + " " + path, started: st.expect(path), ended: make(chan struct{})}
	req, _ := http.NewRequest(method, g.URL(wikiHost, path), body)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	go func() {
		defer close(s.ended)
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode >= 300 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		s.endAt, s.err = time.Now(), err
	}()
	return s
}

// slowBody is an upload that never ends: 64 KiB every 100 ms until the
// test ends.
func slowBody(t *testing.T) io.Reader {
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); pw.Close() })
	go func() {
		chunk := bytes.Repeat([]byte("u"), 64<<10)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return pr
}

// Issue 13, item 2: every open request obeys. An event stream, a slow
// download, a slow upload and a request the app has not answered yet,
// over HTTP/1.1 and HTTP/2, each end within a second of the operator's
// command (or the user's logout) returning, and the client sees them
// fail: a cut HTTP/1.1 body lacks its end (no last chunk, fewer bytes
// than its Content-Length), an unanswered request gets no answer, an
// HTTP/2 stream is reset. Never a clean end, which a client would take
// for the whole response.
func TestOpenStreamsEndWhenAccessEnds(t *testing.T) {
	tests := []struct {
		name   string
		action func(g *testenv.Gateway, c *http.Client)
	}{
		{"session revoke", func(g *testenv.Gateway, c *http.Client) { g.MustCLI("", "session", "revoke", "--user", "anna") }},
		{"logout", func(g *testenv.Gateway, c *http.Client) {
			launcher := g.Get(c, g.URL(g.Portal, "/"))
			if p := g.Post(c, g.URL(g.Portal, "/logout"), url.Values{"csrf": {testenv.CSRF(launcher.Body)}}); p.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", p.StatusCode)
			}
		}},
		{"app disable", func(g *testenv.Gateway, c *http.Client) {
			g.MustCLI("", "app", "disable", "wiki", "--reason", "patching")
		}},
		{"emergency essential", func(g *testenv.Gateway, c *http.Client) {
			g.MustCLI("", "emergency", "set", "essential", "--reason", "incident")
		}},
		{"emergency closed", func(g *testenv.Gateway, c *http.Client) {
			g.MustCLI("", "emergency", "set", "closed", "--reason", "incident")
		}},
		{"groups changed", func(g *testenv.Gateway, c *http.Client) {
			g.MustCLI("", "user", "groups", "anna", "--groups", "sales")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newStreamer(t)
			w := &world{g: testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})}
			g := w.g
			c, _ := w.loggedIn(t, "anna", "staff")
			h1 := g.HTTP1(c)
			streams := []*openStream{
				openRaw(t, g, c, "/events"), openRaw(t, g, c, "/download"),
				openH2(t, g, c, "/events"), openH2(t, g, c, "/download"),
				openCall(t, up, g, h1, "POST", "/upload/h1", slowBody(t)), openCall(t, up, g, c, "POST", "/upload/h2", slowBody(t)),
				openCall(t, up, g, h1, "GET", "/wait/h1", nil), openCall(t, up, g, c, "GET", "/wait/h2", nil),
			}
			for _, s := range streams {
				select {
				case <-s.started:
				case <-s.ended:
					t.Fatalf("%s ended before the action: %v", s.name, s.err)
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: nothing arrived", s.name)
				}
			}
			begun := time.Now()
			tt.action(g, c)
			done := time.Now()
			for _, s := range streams {
				select {
				case <-s.ended:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s still flows 5s after %s", s.name, tt.name)
				}
				cut := s.endAt.Sub(done)
				t.Logf("%s ended %v after %s began, %v after it returned: %v", s.name, s.endAt.Sub(begun).Round(time.Millisecond), tt.name, cut.Round(time.Millisecond), s.err)
				if cut > time.Second {
					t.Errorf("%s ended %v after %s returned; want within 1s", s.name, cut, tt.name)
				}
				if s.err == nil || s.body && errors.Is(s.err, io.EOF) {
					t.Errorf("%s ended cleanly (%v): a client would take the cut response for a whole one", s.name, s.err)
				}
				if s.raw != nil && s.chunked && bytes.HasSuffix(s.raw.Bytes(), []byte("\r\n0\r\n\r\n")) {
					t.Errorf("%s: the cut chunked body ends with a last chunk", s.name)
				}
			}
			// The HTTP/2 streams were reset, not their connection: the
			// same client's next request goes on it and gets an answer
			// (the refusal).
			var reused bool
			req, _ := http.NewRequest("GET", g.URL(wikiHost, "/after"), nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
			}))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("a request on the HTTP/2 connection after the cut: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("after %s the app still answers: %d", tt.name, resp.StatusCode)
			}
			if !reused || resp.ProtoMajor != 2 {
				t.Fatalf("after the cut the HTTP/2 connection was gone (reused %v, %s)", reused, resp.Proto)
			}
		})
	}
}

// A timed emergency level that runs out changes the level in force with
// no change in the store to announce it: the level before it (here
// essential, which the wiki is not) comes back, and the open responses it
// refuses end within a second of that, not at the next periodic recheck.
func TestOpenStreamsEndWhenATimedLevelRunsOut(t *testing.T) {
	up := newStreamer(t)
	w := &world{g: testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})}
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff")
	g.MustCLI("", "emergency", "set", "essential", "--reason", "incident")
	const open = 2 * time.Second
	begun := time.Now()
	g.MustCLI("", "emergency", "set", "normal", "--reason", "reopened for the payroll run", "--for", open.String())
	returned := time.Now()
	streams := []*openStream{openRaw(t, g, c, "/events"), openH2(t, g, c, "/download")}
	for _, s := range streams {
		select {
		case <-s.started:
		case <-s.ended:
			t.Fatalf("%s ended before the level ran out: %v", s.name, s.err)
		case <-time.After(open):
			t.Fatalf("%s: nothing arrived", s.name)
		}
	}
	for _, s := range streams {
		select {
		case <-s.ended:
		case <-time.After(open + 5*time.Second):
			t.Fatalf("%s still flows 5s after the timed level ran out", s.name)
		}
		t.Logf("%s ended %v after the timed level ran out: %v", s.name, s.endAt.Sub(returned.Add(open)).Round(time.Millisecond), s.err)
		if s.endAt.Before(begun.Add(open)) {
			t.Errorf("%s ended before the level ran out", s.name)
		}
		if s.endAt.After(returned.Add(open + time.Second)) {
			t.Errorf("%s ended %v after the level ran out; want within 1s", s.name, s.endAt.Sub(returned.Add(open)))
		}
		if s.err == nil || errors.Is(s.err, io.EOF) {
			t.Errorf("%s ended cleanly: %v", s.name, s.err)
		}
	}
}
