package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The answers say their status and nothing else, whatever the reason.
func TestAnswers(t *testing.T) {
	down := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	for _, tc := range []struct {
		name     string
		store    error
		drain    bool
		status   int
		body     string
		liveBody string
	}{
		{"ready", nil, false, 200, "ready", "ok"},
		{"store down", down, false, 503, "not ready", "ok"},
		{"draining", nil, true, 503, "not ready", "ok"},
		{"draining, store down", down, true, 503, "not ready", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Store: func(context.Context) error { return tc.store }}
			if tc.drain {
				c.Drain()
			}
			w := httptest.NewRecorder()
			c.ServeReady(w, httptest.NewRequest("GET", ReadyPath, nil))
			if w.Code != tc.status || strings.TrimSpace(w.Body.String()) != tc.body {
				t.Errorf("readyz: %d %q, want %d %q", w.Code, w.Body, tc.status, tc.body)
			}
			if strings.Contains(w.Body.String(), "5432") || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("readyz says more than its status, or may be cached: %q %v", w.Body, w.Header())
			}
			w = httptest.NewRecorder()
			Live(w, httptest.NewRequest("GET", LivePath, nil))
			if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != tc.liveBody {
				t.Errorf("healthz: %d %q", w.Code, w.Body)
			}
		})
	}
}

// A flood of checks costs the store one query per CacheFor, and callers
// who arrive during a check share it; a fresh check after a failure seen
// elsewhere does not trust a good answer, but does trust a bad one.
func TestChecksAreSharedAndCached(t *testing.T) {
	var calls atomic.Int64
	var failing atomic.Bool
	release := make(chan struct{})
	c := &Checker{CacheFor: time.Hour, Store: func(context.Context) error {
		calls.Add(1)
		<-release
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	}}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Ready(context.Background()) }()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond) // until the first check has begun
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("50 concurrent checks ran %d store queries", n)
	}
	if err := c.Ready(context.Background()); err != nil || calls.Load() != 1 {
		t.Fatalf("a cached good answer: %v after %d queries", err, calls.Load())
	}
	failing.Store(true)
	if err := c.StoreErr(context.Background(), true); err == nil || calls.Load() != 2 {
		t.Fatalf("a fresh check: %v after %d queries", err, calls.Load())
	}
	if err := c.StoreErr(context.Background(), true); err == nil || calls.Load() != 2 {
		t.Fatalf("a fresh check after a bad answer: %v after %d queries", err, calls.Load())
	}
}
