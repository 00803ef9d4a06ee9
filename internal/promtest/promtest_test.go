package promtest

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Prometheus scrapes a TLS target with the bearer token from its file,
// and a query reads back what the target said.
func TestPrometheusScrapesWithToken(t *testing.T) {
	var scrapes, refused atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "Bearer tok-123" {
			refused.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE test_scrapes_total counter\ntest_scrapes_total{kind=\"x\"} %d\n", n)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, Target{Addr: srv.Listener.Addr().String(), CAFile: ca, Token: "tok-123"})
	s := p.Await(t, `test_scrapes_total{kind="x"}`, 20*time.Second, func(s []Sample) bool {
		v, ok := Value(s)
		return ok && v >= 2
	})
	if s[0].Labels["job"] != "sluis" {
		t.Fatalf("labels %v", s[0].Labels)
	}
	if refused.Load() != 0 {
		t.Fatalf("%d scrapes refused", refused.Load())
	}
	if up, err := p.Query(t.Context(), "up"); err != nil || len(up) != 1 || up[0].Value != 1 {
		t.Fatalf("up: %v %v", up, err)
	}
}
