package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections opened
// to it.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func get(t *testing.T, tr *Transport, method, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestTransportReusesConnections(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	tr := NewTransport()
	for i := 0; i < 50; i++ {
		resp, body := get(t, tr, "GET", srv.URL+fmt.Sprintf("/%d", i))
		if want := fmt.Sprintf("hello /%d", i); resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 50 sequential requests, want 1", n)
	}
	// After HEAD a faulty upstream might still send a body: not reused.
	if resp, body := get(t, tr, "HEAD", srv.URL); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	get(t, tr, "GET", srv.URL)
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after HEAD, want 2", n)
	}
}

// An upstream that answers HEAD with a body must not make one user's
// response the next user's.
func TestTransportNeverHandsOneResponseToTheNextRequest(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body := "data of " + req.URL.Path[1:]
			// Wrong for HEAD: the body is sent anyway.
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	tr := NewTransport()
	get(t, tr, "HEAD", url+"/mallory")
	for _, user := range []string{"anna", "bob", "carol"} {
		if _, body := get(t, tr, "GET", url+"/"+user); body != "data of "+user {
			t.Fatalf("%s got %q", user, body)
		}
	}
	// The same with bytes arriving while the connection is idle.
	url2 := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(50 * time.Millisecond) // the unsolicited bytes come later
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforeign")
			for {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforeign")
			}
		}
	})
	get(t, tr, "GET", url2)
	time.Sleep(200 * time.Millisecond) // let the unsolicited bytes arrive on the idle connection
	if _, body := get(t, tr, "GET", url2); body != "ok" {
		t.Fatalf("second request got %q", body)
	}
}

// A request that timed out is not sent again.
func TestTransportDoesNotRetryAfterATimeout(t *testing.T) {
	var served atomic.Int64
	release := make(chan struct{})
	defer close(release)
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/slow" {
				served.Add(1)
				<-release
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := NewTransport()
	tr.ResponseHeaderTimeout = 200 * time.Millisecond
	get(t, tr, "GET", url+"/fast") // leaves a pooled connection
	req, _ := http.NewRequest("GET", url+"/slow", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("no timeout")
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("the slow request reached the upstream %d times", n)
	}
}

func TestTransportDoesNotReuseHalfReadConnections(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	})
	tr := NewTransport()
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		io.ReadFull(resp.Body, buf)
		start := time.Now()
		resp.Body.Close() // must not drain the remaining megabyte first
		if d := time.Since(start); d > time.Second {
			t.Fatalf("close took %v", d)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (a half-read connection must not be reused)", n)
	}
}

func TestTransportHonoursConnectionClose(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	tr := NewTransport()
	for i := 0; i < 3; i++ {
		if _, body := get(t, tr, "GET", srv.URL); body != "bye" {
			t.Fatalf("body %q", body)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// rawServer answers each accepted connection with handle.
func rawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func readRequest(br *bufio.Reader) bool {
	_, err := http.ReadRequest(br)
	return err == nil
}

// An upstream that closes an idle kept-alive connection: the next request
// is retried once on a fresh connection.
func TestTransportRetriesOnAStaleConnection(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		// then close, though the response promised keep-alive
	})
	tr := NewTransport()
	for i := 0; i < 3; i++ {
		if _, body := get(t, tr, "GET", url); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
}

func TestTransportRefusesWhatItCannotTrust(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		hang  bool
	}{
		{"huge header", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\nContent-Length: 0\r\n\r\n", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", false},
		{"no answer", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					io.WriteString(c, tt.reply)
				}
				if tt.hang {
					<-release
				}
			})
			tr := NewTransport()
			tr.ResponseHeaderTimeout = 200 * time.Millisecond
			req, _ := http.NewRequest("GET", url, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %d, want an error", resp.StatusCode)
			}
		})
	}
}

// Bytes after a response's end mean the upstream frames differently than
// it says: that connection is not used again.
func TestTransportDropsConnectionsWithLeftovers(t *testing.T) {
	var served atomic.Int64
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			served.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
		}
	})
	tr := NewTransport()
	for i := 0; i < 3; i++ {
		if _, body := get(t, tr, "GET", url); body != "ok" {
			t.Fatalf("request %d got %q", i, body)
		}
	}
}

func TestTransportSkipsInformationalResponses(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		}
	})
	resp, body := get(t, NewTransport(), "GET", url)
	if resp.StatusCode != 200 || body != "final" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestTransportStopsWhenTheClientGoesAway(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			<-release
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := NewTransport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	io.ReadFull(resp.Body, buf)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read of an unfinished body ended without error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("body read still blocked after the client went away")
	}
	resp.Body.Close()
}

func TestTransportSendsBodiesThroughTheFallback(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("payload"))
	resp, err := NewTransport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST payload" {
		t.Fatalf("%q", b)
	}
}

func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1024))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"sluis", NewTransport()}, {"net/http", NewTransport().Fallback}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				resp, err := tc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
