package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/davtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/proxy"
)

// Issue 12, "How it is checked": Apache httpd with mod_dav behind the
// gateway, as a WebDAV client would use it.

const (
	davHost = "files.sluis.test"
	// impatientHost is the same Apache with a short body_idle.
	impatientHost = "drop.sluis.test"
	// davBodyIdle is impatientHost's timeouts.body_idle.
	davBodyIdle = 2 * time.Second
)

// davWorld is a real Apache WebDAV server behind a gateway as two apps
// (files with the default bounds, drop with a body_idle of 2 s), and a
// client logged in to both that speaks HTTP/1.1, as WebDAV clients do.
func davWorld(t *testing.T) (*davtest.Server, *testenv.Gateway, *http.Client) {
	t.Helper()
	dav := davtest.Start(t)
	g := testenv.Start(t,
		testenv.App{Name: "files", Host: davHost, Upstream: dav.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "drop", Host: impatientHost, Upstream: dav.URL, Groups: []string{"staff"}, MFA: true,
			Extra: fmt.Sprintf("    timeouts:\n      body_idle: %s\n", davBodyIdle)})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(davHost, "/"), "anna", pw, secret); p.Request.URL.Hostname() != davHost {
		t.Fatalf("login ended on %s (%d), not on the app", p.Request.URL, p.StatusCode)
	}
	if p := g.Follow(c, g.Get(c, g.URL(impatientHost, "/"))); p.Request.URL.Hostname() != impatientHost {
		t.Fatalf("opening drop ended on %s (%d)", p.Request.URL, p.StatusCode)
	}
	c = g.HTTP1(c)
	c.Timeout = 3 * time.Minute
	return dav, g, c
}

// davDo sends a WebDAV request through the gateway and returns the status.
func davDo(t *testing.T, c *http.Client, method, u string, body io.Reader, header ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// fetchSum GETs u through the gateway and returns the status and the
// SHA-256 of the body.
func fetchSum(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, fmt.Sprintf("%x", h.Sum(nil))
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// A 50 MiB PUT on a line slow enough that it takes more than a minute
// arrives byte for byte: an upload is bounded by the pause between its
// bytes, never by its total time. It takes over a minute of wall time but
// little CPU, so it runs alongside the other parallel tests.
func TestWebDAVSlowLargeUploadArrivesWhole(t *testing.T) {
	t.Parallel()
	dav, g, c := davWorld(t)
	data := make([]byte, 50<<20)
	rand.Read(data)
	want := fmt.Sprintf("%x", sha256.Sum256(data))
	// 400 writes of 128 KiB, one every 160 ms: about 800 KiB/s, 64 s.
	const chunk, every = 128 << 10, 160 * time.Millisecond
	pr, pw := io.Pipe()
	maxGap := make(chan time.Duration, 1)
	go func() {
		var gap time.Duration
		defer func() { maxGap <- gap }()
		start := time.Now()
		last := start
		for i := 0; i*chunk < len(data); i++ {
			time.Sleep(time.Until(start.Add(time.Duration(i) * every))) // the pace of a slow line
			if _, err := pw.Write(data[i*chunk : min((i+1)*chunk, len(data))]); err != nil {
				return
			}
			gap = max(gap, time.Since(last))
			last = time.Now()
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, g.URL(davHost, "/big.bin"), pr)
	req.ContentLength = int64(len(data))
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed, gap := time.Since(start), <-maxGap
	t.Logf("50 MiB PUT: %d after %v; longest pause between writes %v", resp.StatusCode, elapsed.Round(time.Millisecond), gap.Round(time.Millisecond))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d, want 201", resp.StatusCode)
	}
	if elapsed <= 60*time.Second {
		t.Errorf("the upload took %v; the test needs it to take over a minute", elapsed)
	}
	// The app has the default body_idle: the line was slow, never idle.
	if gap > proxy.DefaultBodyIdle/10 {
		t.Errorf("a pause of %v between writes; the test needs them far below body_idle", gap)
	}
	if got := fileSum(t, filepath.Join(dav.Root, "big.bin")); got != want {
		t.Errorf("Apache stored a file with SHA-256 %s, want %s", got, want)
	}
	if status, got := fetchSum(t, c, g.URL(davHost, "/big.bin")); status != http.StatusOK || got != want {
		t.Errorf("GET through the gateway: %d, SHA-256 %s, want 200 and %s", status, got, want)
	}
}

// MOVE names its target with the public URL; the gateway translates it to
// the upstream's, and the file is then at the new name and gone at the
// old one.
func TestWebDAVMoveWithThePublicDestination(t *testing.T) {
	t.Parallel()
	dav, g, c := davWorld(t)
	public := fmt.Sprintf("https://%s:%d", davHost, g.Port)
	const content = "quarterly figures\n"
	for _, step := range []struct {
		method, path string
		body         string
		header       []string
		want         int
	}{
		{"PUT", "/report.txt", content, nil, http.StatusCreated},
		{"MKCOL", "/archive/", "", nil, http.StatusCreated},
		{"MOVE", "/report.txt", "", []string{"Destination", public + "/archive/report%202026.txt"}, http.StatusCreated},
		{"GET", "/archive/report%202026.txt", "", nil, http.StatusOK},
		{"GET", "/report.txt", "", nil, http.StatusNotFound},
		// Moving it back over an existing name needs Overwrite, as in
		// any WebDAV server.
		{"PUT", "/report.txt", "draft\n", nil, http.StatusCreated},
		{"MOVE", "/archive/report%202026.txt", "", []string{"Destination", public + "/report.txt", "Overwrite", "F"}, http.StatusPreconditionFailed},
		{"MOVE", "/archive/report%202026.txt", "", []string{"Destination", public + "/report.txt", "Overwrite", "T"}, http.StatusNoContent},
		{"GET", "/archive/report%202026.txt", "", nil, http.StatusNotFound},
	} {
		if got := davDo(t, c, step.method, g.URL(davHost, step.path), strings.NewReader(step.body), step.header...); got != step.want {
			t.Fatalf("%s %s %q: %d, want %d", step.method, step.path, step.header, got, step.want)
		}
	}
	if status, got := fetchSum(t, c, g.URL(davHost, "/report.txt")); status != http.StatusOK || got != fmt.Sprintf("%x", sha256.Sum256([]byte(content))) {
		t.Errorf("after moving it back, /report.txt: %d, not the moved content", status)
	}
	if _, err := os.Stat(filepath.Join(dav.Root, "archive", "report 2026.txt")); !os.IsNotExist(err) {
		t.Errorf("the moved file is still in Apache's directory: %v", err)
	}
}

// A client's lock works through the gateway: a locked file refuses a PUT
// without its token and takes one with it, also when the If header names
// the file by its public URL; COPY's Destination is translated as MOVE's.
func TestWebDAVLockAndCopy(t *testing.T) {
	t.Parallel()
	_, g, c := davWorld(t)
	public := fmt.Sprintf("https://%s:%d", davHost, g.Port)
	if got := davDo(t, c, "PUT", g.URL(davHost, "/notes.txt"), strings.NewReader("v1\n")); got != http.StatusCreated {
		t.Fatalf("PUT: %d", got)
	}
	const lockinfo = `<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>anna</D:owner></D:lockinfo>`
	req, _ := http.NewRequest("LOCK", g.URL(davHost, "/notes.txt"), strings.NewReader(lockinfo))
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("Timeout", "Second-600")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	token := resp.Header.Get("Lock-Token")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(token, "<opaquelocktoken:") {
		t.Fatalf("LOCK: %d, Lock-Token %q", resp.StatusCode, token)
	}
	for _, step := range []struct {
		method, path, body string
		header             []string
		want               int
	}{
		{"PUT", "/notes.txt", "v2\n", nil, http.StatusLocked},
		{"PUT", "/notes.txt", "v2\n", []string{"If", "<" + public + "/notes.txt> (" + token + ")"}, http.StatusNoContent},
		{"PUT", "/notes.txt", "v3\n", []string{"If", "(" + token + ")"}, http.StatusNoContent},
		{"COPY", "/notes.txt", "", []string{"Destination", public + "/notes%20copy.txt"}, http.StatusCreated},
		{"UNLOCK", "/notes.txt", "", []string{"Lock-Token", token}, http.StatusNoContent},
		{"PUT", "/notes.txt", "v4\n", nil, http.StatusNoContent},
	} {
		if got := davDo(t, c, step.method, g.URL(davHost, step.path), strings.NewReader(step.body), step.header...); got != step.want {
			t.Fatalf("%s %s %q: %d, want %d", step.method, step.path, step.header, got, step.want)
		}
	}
	if status, got := fetchSum(t, c, g.URL(davHost, "/notes%20copy.txt")); status != http.StatusOK || got != fmt.Sprintf("%x", sha256.Sum256([]byte("v3\n"))) {
		t.Errorf("the copy: %d, not the locked file's last content", status)
	}
}

// An upload that is cut (the client gone mid-body, or stalled past the
// app's body_idle), with a Content-Length or chunked, never gets a 2xx,
// and nothing is stored under its name: a file it was to replace stays as
// it was.
func TestWebDAVCutUploadIsNoSuccess(t *testing.T) {
	t.Parallel()
	dav, g, c := davWorld(t)
	part := make([]byte, 1<<20)
	rand.Read(part)
	closeWrite := func(c *tls.Conn) { c.CloseWrite() }
	for _, tc := range []struct {
		name, host, path string
		chunked          bool   // else a Content-Length of 8 MiB
		before           string // the file's content before, if any
		// cut ends the client's side after the first MiB.
		cut func(*tls.Conn)
		// reads: the client still reads the answer; answered: it must
		// get one.
		reads, answered bool
	}{
		{"client closes its side", davHost, "/closed-write.bin", false, "", closeWrite, true, false},
		{"client closes the connection", davHost, "/closed.bin", false, "", func(c *tls.Conn) { c.Close() }, false, false},
		{"client stalls past body_idle", impatientHost, "/stalled.bin", false, "", func(*tls.Conn) {}, true, true},
		{"chunked, client closes its side before the last chunk", davHost, "/chunked-closed-write.bin", true, "", closeWrite, true, false},
		{"chunked, client stalls past body_idle", impatientHost, "/chunked-stalled.bin", true, "", func(*tls.Conn) {}, true, true},
		{"replacing a file, client stalls", impatientHost, "/kept.txt", false, "the whole earlier version\n", func(*tls.Conn) {}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != "" {
				if got := davDo(t, c, "PUT", g.URL(davHost, tc.path), strings.NewReader(tc.before)); got != http.StatusCreated {
					t.Fatalf("PUT the earlier version: %d", got)
				}
			}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.Addr(), g.TLSConfig(tc.host))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n", tc.path, tc.host, cookieHeader(c, tc.host))
			if tc.chunked {
				req += fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(part), part)
			} else {
				req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", 8<<20, part)
			}
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tc.cut(conn)
			if tc.reads {
				conn.SetReadDeadline(time.Now().Add(davBodyIdle + 20*time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				switch {
				case err == nil:
					resp.Body.Close()
					t.Logf("the client saw %s after %v", resp.Status, time.Since(start).Round(time.Millisecond))
					if resp.StatusCode < 300 {
						t.Fatalf("a cut upload got %s", resp.Status)
					}
					if tc.answered && resp.StatusCode != http.StatusRequestTimeout {
						t.Errorf("a stalled upload got %s, want 408", resp.Status)
					}
				case tc.answered:
					t.Fatalf("no answer to a stalled upload: %v", err)
				default:
					t.Logf("the client saw no answer: %v", err)
				}
			}
			// Nothing under its name for the user to take for the file:
			// no file, or the earlier version whole.
			status, sum := fetchSum(t, c, g.URL(davHost, tc.path))
			switch {
			case tc.before == "" && status != http.StatusNotFound:
				t.Errorf("GET %s after the cut: %d, want 404", tc.path, status)
			case tc.before != "" && (status != http.StatusOK || sum != fmt.Sprintf("%x", sha256.Sum256([]byte(tc.before)))):
				t.Errorf("GET %s after the cut: %d, not the earlier version", tc.path, status)
			}
			// What Apache made of it, once it has finished the request.
			puts := 1
			if tc.before != "" {
				puts = 2
			}
			line := waitFor(t, 30*time.Second, func() string {
				var lines []string
				for _, l := range strings.Split(dav.AccessLog(), "\n") {
					if strings.HasPrefix(l, "PUT "+tc.path+" ") {
						lines = append(lines, l)
					}
				}
				if len(lines) < puts {
					return ""
				}
				return lines[puts-1]
			})
			entries, _ := os.ReadDir(dav.Root)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Logf("Apache logged %q; its directory holds %q", line, names)
		})
	}
}

// cookieHeader is the value of the Cookie header c sends to host.
func cookieHeader(c *http.Client, host string) string {
	var cookies []string
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "https", Host: host}) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	return strings.Join(cookies, "; ")
}

// waitFor polls f until it returns something, for up to d.
func waitFor(t *testing.T, d time.Duration, f func() string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if s := f(); s != "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing after %v", d)
		}
		time.Sleep(50 * time.Millisecond) // another process writes it
	}
}
