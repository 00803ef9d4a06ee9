package selfcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawGateway is a TLS server that answers each request line with what
// answer returns, written as raw bytes; stop makes it stop answering.
type rawGateway struct {
	ln   net.Listener
	mu   sync.Mutex
	down bool
}

func startRaw(t *testing.T, answer func(line string) string) (*rawGateway, string) {
	cert := httptest.NewUnstartedServer(nil)
	cert.StartTLS()
	conf := cert.TLS.Clone()
	cert.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	g := &rawGateway{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					return
				}
				g.mu.Lock()
				down := g.down
				g.mu.Unlock()
				if down {
					return
				}
				out := answer(strings.TrimSpace(line))
				if out == "CRASH" {
					g.mu.Lock()
					g.down = true
					g.mu.Unlock()
					return
				}
				conn.Write([]byte(out))
			}()
		}
	}()
	return g, "https://" + ln.Addr().String() + "/login"
}

const loginPage = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nStrict-Transport-Security: max-age=31536000\r\nContent-Length: 46\r\nConnection: close\r\n\r\n<form><input type=\"password\" name=\"pw\"></form>"

func runRaw(t *testing.T, url string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{URL: url, Insecure: true, Timeout: time.Second, BlockProbes: 3})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func result(rep *Report, group, name string) Result {
	for _, r := range rep.Checks {
		if r.Group == group && r.Name == name {
			return r
		}
	}
	return Result{Status: "missing"}
}

// A gateway that answers an exploit with file contents and no status line
// fails; one that dies on a request is named; a 103 before the real answer
// does not confuse the check.
func TestHostileAnswers(t *testing.T) {
	_, url := startRaw(t, func(line string) string {
		switch {
		case strings.Contains(line, "/vpn/../vpns/cfg/smb.conf"):
			return "root:x:0:0:root:/root:/bin/bash\n"
		case strings.HasPrefix(line, "GET /login"):
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + loginPage
		case strings.Contains(line, "/p/u/doAuthentication.do"):
			return "CRASH"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	})
	rep := runRaw(t, url)
	if r := result(rep, "headers", "login page reachable"); r.Status != Pass || !strings.Contains(r.Evidence, "200 OK") {
		t.Errorf("login page behind a 103: %+v", r)
	}
	if r := result(rep, "headers", "HSTS"); r.Status != Pass {
		t.Errorf("HSTS of the page behind a 103: %+v", r)
	}
	if r := result(rep, "probe", "Citrix CVE-2019-19781 traversal"); r.Status != Fail || !strings.Contains(r.Evidence, "/etc/passwd contents") {
		t.Errorf("a traversal answered with /etc/passwd and no status line: %+v", r)
	}
	if r := result(rep, "probe", "CitrixBleed 2 CVE-2025-5777"); r.Status != Fail || !strings.Contains(r.Evidence, "stopped answering") {
		t.Errorf("the request that took the gateway down: %+v", r)
	}
	if rep.OK() || rep.Down != "CitrixBleed 2 CVE-2025-5777" {
		t.Errorf("report: ok %v, down after %q; notes %q", rep.OK(), rep.Down, rep.Notes)
	}
	if r := result(rep, "blocking", "probes get the source blocked"); r.Status != "missing" {
		t.Errorf("a down gateway was checked for blocking: %+v", r)
	}
}

// A gateway that sends a header without end or a body without end costs
// the check a bounded amount of memory and time.
func TestEndlessAnswers(t *testing.T) {
	_, url := startRaw(t, func(line string) string {
		if strings.HasPrefix(line, "GET /login") {
			return loginPage
		}
		if strings.Contains(line, "/admin ") {
			return "HTTP/1.1 200 OK\r\nX-Endless: " + strings.Repeat("a", 3<<20)
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	})
	start := time.Now()
	rep := runRaw(t, url)
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("the run took %s", d)
	}
	if r := result(rep, "admin", "GET /admin"); r.Status == "missing" || r.Status == Fail {
		t.Errorf("an endless header: %+v", r)
	}
}

// Interrupting a run records nothing after the interruption, and the
// report says the run did not end.
func TestInterrupted(t *testing.T) {
	_, url := startRaw(t, func(line string) string { return loginPage })
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	rep, err := Run(ctx, Options{URL: url, Insecure: true, Timeout: time.Second, Progress: func(Result) {
		if n++; n == 12 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.OK() || len(rep.Checks) != 12 {
		t.Fatalf("interrupted after 12 checks: interrupted %v, ok %v, %d checks", rep.Interrupted, rep.OK(), len(rep.Checks))
	}
}
