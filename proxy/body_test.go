package proxy_test

import (
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/proxy"
)

// An upload that takes longer than the server's ReadTimeout, but never
// pauses for the app's body idle time, arrives whole.
func TestUploadOutlastsTheServersReadTimeout(t *testing.T) {
	f := newFixture(t)
	var gotSum [32]byte
	var gotLen int
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		gotSum, gotLen = sha256.Sum256(b), len(b)
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	app := sluis.App{Name: "files", Host: "files.test", Upstream: up.URL, BodyIdle: 500 * time.Millisecond}
	p, err := proxy.New(app, f.appURL, f.signer, nil, time.Now, slog.New(slog.NewTextHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.Serve(w, r, active()) }))
	gw.Config.ReadTimeout = time.Second
	gw.Start()
	defer gw.Close()

	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(data); i += 16 << 10 {
			pw.Write(data[i : i+16<<10])
			time.Sleep(150 * time.Millisecond) // 16 chunks: about 2.4 s in all
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, gw.URL+"/f", pr)
	req.ContentLength = int64(len(data))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || gotLen != len(data) || gotSum != sha256.Sum256(data) || time.Since(start) < 2*time.Second {
		t.Fatalf("status %d after %v; the app got %d bytes", resp.StatusCode, time.Since(start), gotLen)
	}
}
