package connect_test

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/sluis-gateway/sluis/connect"
)

// A connection's first bytes go out with the stream's open, before the
// gateway answers (early data); an attempt that fails (a gateway
// restarting answers 503) is made again with the same bytes, so the app
// gets each byte once, in order.
func TestPipeSendsEarlyDataAndRepeatsItOnARetry(t *testing.T) {
	var mu sync.Mutex
	var attempts []string // what each attempt's body held before it was answered
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/.sluis/tunnel/echo" {
			http.NotFound(w, r)
			return
		}
		// The first bytes are here before anything is answered.
		first := make([]byte, len("hello"))
		if _, err := io.ReadFull(r.Body, first); err != nil {
			t.Errorf("reading the early data: %v", err)
			return
		}
		mu.Lock()
		attempts = append(attempts, string(first))
		n := len(attempts)
		mu.Unlock()
		if n == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.Write(first)
		http.NewResponseController(w).Flush()
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				http.NewResponseController(w).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	gw, _ := url.Parse(srv.URL)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := &connect.Client{Gateway: gw, App: "echo", Token: "t", HTTP: connect.NewHTTP(connect.Options{Gateway: gw, RootCAs: pool})}

	local, app := net.Pipe()
	type result struct {
		up  int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		up, _, err := c.Pipe(context.Background(), local, local)
		done <- result{up, err}
	}()
	if _, err := app.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	read := func(want string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(app, got); err != nil || string(got) != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	read("hello")
	if _, err := app.Write([]byte(", world")); err != nil {
		t.Fatal(err)
	}
	read(", world")
	app.Close()
	res := <-done
	if res.err != nil || res.up != int64(len("hello, world")) {
		t.Errorf("Pipe: %d bytes up, %v", res.up, res.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 || attempts[0] != "hello" || attempts[1] != "hello" {
		t.Errorf("attempts saw %q, want the early data twice", attempts)
	}
}
