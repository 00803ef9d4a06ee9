package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Long uploads are bounded by the time between bytes, not by their total
// time, and one that is cut never gets a 2xx; an app may cap the size.
func TestUploadsAreBoundedByIdleTimeNotTotalTime(t *testing.T) {
	var mu sync.Mutex
	var got []string // "length sha256" of each body the app read whole
	app := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			return
		}
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		if err == nil {
			got = append(got, fmt.Sprintf("%d %x", len(b), sha256.Sum256(b)))
		}
		mu.Unlock()
		// Like an app that takes whatever arrived for the whole file.
		w.WriteHeader(http.StatusCreated)
	})
	g := testenv.Start(t, testenv.App{Name: "files", Host: wikiHost, Upstream: app, Groups: []string{"staff"}, MFA: true,
		Extra: "    timeouts:\n      body_idle: 1s\n    max_body: 1MiB\n"})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", p.StatusCode)
	}
	c = g.HTTP1(c)
	upload := func(data []byte, chunk int, pause time.Duration, stallAt int) (int, error) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(data); i += chunk {
				if stallAt > 0 && i >= stallAt {
					time.Sleep(3 * time.Second) // longer than body_idle
					stallAt = 0
				}
				if _, err := pw.Write(data[i:min(i+chunk, len(data))]); err != nil {
					return
				}
				time.Sleep(pause)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPut, g.URL(wikiHost, "/upload"), pr)
		req.ContentLength = int64(len(data))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	data := make([]byte, 600<<10)
	rand.Read(data)
	want := fmt.Sprintf("%d %x", len(data), sha256.Sum256(data))

	// 600 KiB over about 3 s, never idle for 1 s: whole.
	start := time.Now()
	status, err := upload(data, 20<<10, 100*time.Millisecond, 0)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("slow upload: %d %v", status, err)
	}
	mu.Lock()
	ok := len(got) == 1 && got[0] == want
	mu.Unlock()
	if !ok || time.Since(start) < 2*time.Second {
		t.Fatalf("slow upload took %v; the app read %v, want [%s]", time.Since(start), got, want)
	}

	// Stalled halfway for longer than body_idle: cut, and not a success,
	// though the app answered 201.
	status, err = upload(data, 20<<10, 10*time.Millisecond, 300<<10)
	if err == nil && status >= 200 && status < 300 {
		t.Fatalf("a stalled upload got %d", status)
	}
	if !strings.Contains(g.Logs(), "request body cut or refused") {
		t.Fatal("the cut is not logged")
	}

	// Over the app's cap: 413, before anything reaches the app.
	big := bytes.Repeat([]byte("x"), 2<<20)
	if status, err := upload(big, 64<<10, 0, 0); err == nil && status != http.StatusRequestEntityTooLarge {
		t.Fatalf("an upload over max_body: %d", status)
	}
}

// newUpstreamFunc starts an upstream with handler h and returns its URL.
func newUpstreamFunc(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// The wait for an app's response head is the app's own setting.
func TestResponseHeaderTimeoutIsPerApp(t *testing.T) {
	slow := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
	})
	g := testenv.Start(t,
		testenv.App{Name: "impatient", Host: wikiHost, Upstream: slow, Groups: []string{"staff"}, MFA: true, Extra: "    timeouts:\n      response_header: 1s\n"},
		testenv.App{Name: "patient", Host: hrHost, Upstream: slow, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", p.StatusCode)
	}
	if p := g.Get(c, g.URL(wikiHost, "/slow")); p.StatusCode != http.StatusBadGateway {
		t.Fatalf("an app that answers after 2 s with response_header 1s: %d", p.StatusCode)
	}
	if p := g.Follow(c, g.Get(c, g.URL(hrHost, "/slow"))); p.StatusCode != http.StatusOK {
		t.Fatalf("the same with the default of 60s: %d", p.StatusCode)
	}
}
