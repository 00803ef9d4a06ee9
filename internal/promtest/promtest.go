// Package promtest runs a real Prometheus (Debian's prometheus) on
// loopback for tests: it scrapes one target over TLS with a bearer token
// every ScrapeInterval, keeps its data in a temporary directory, and
// answers queries through its HTTP API (Query), as a monitoring system
// would read sluis's metrics. It starts a process, so only tests and
// benchmark programs may import it (internal/deptest checks this).
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testserver"
)

// Binary is where Debian installs Prometheus.
const Binary = "/usr/bin/prometheus"

// ScrapeInterval is how often the target is scraped.
const ScrapeInterval = time.Second

// Target is what Prometheus scrapes.
type Target struct {
	// Addr is the target's host:port; it speaks TLS.
	Addr string
	// ServerName is the name the target's certificate is checked
	// against; empty means the host of Addr.
	ServerName string
	// Path is the metrics' path; empty means /metrics.
	Path string
	// CAFile is the PEM file of the CA that signed the target's
	// certificate.
	CAFile string
	// Token is the bearer token sent with each scrape; empty sends none.
	Token string
}

// Prometheus is a running Prometheus.
type Prometheus struct {
	URL    string // http://127.0.0.1:PORT, its web interface and API
	Config string // the configuration it runs

	cmd    *exec.Cmd
	exited chan struct{}
	logs   *testserver.Output
}

// Start runs Prometheus scraping target for a test, waits until it is
// ready, and stops it when the test ends. It skips the test when
// Prometheus is not installed, and fails it instead under
// SLUIS_REQUIRE_INTEGRATION=1.
func Start(t testing.TB, target Target) *Prometheus {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		testserver.Missing(t, "prometheus", "prometheus")
	}
	p, err := Run(t.TempDir(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// Run runs Prometheus with its files in dir (for benchmark programs); the
// caller stops it.
func Run(dir string, target Target) (*Prometheus, error) {
	p := &Prometheus{Config: configText(dir, target)}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(p.Config), 0o600); err != nil {
		return nil, err
	}
	if target.Token != "" {
		// In a file, as a real setup keeps it: never on a command line.
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(target.Token), 0o600); err != nil {
			return nil, err
		}
	}
	// A free port is picked, then bound by Prometheus: another process
	// may take it in between. So: up to three tries.
	var last error
	for try := 0; try < 3; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testserver.FreePort())
		p.URL = "http://" + addr
		if last = p.start(dir, file, addr); last == nil {
			return p, nil
		}
	}
	return nil, last
}

// configText is the configuration that scrapes target, with its token
// file and data in dir.
func configText(dir string, target Target) string {
	path := target.Path
	if path == "" {
		path = "/metrics"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: 1m\n", ScrapeInterval, ScrapeInterval)
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: sluis\n    scheme: https\n    metrics_path: %s\n", path)
	if target.Token != "" {
		fmt.Fprintf(&b, "    authorization:\n      type: Bearer\n      credentials_file: %s\n", filepath.Join(dir, "token"))
	}
	fmt.Fprintf(&b, "    tls_config:\n      ca_file: %s\n      min_version: TLS12\n", target.CAFile)
	if target.ServerName != "" {
		fmt.Fprintf(&b, "      server_name: %s\n", target.ServerName)
	}
	fmt.Fprintf(&b, "    static_configs:\n      - targets: [%q]\n", target.Addr)
	return b.String()
}

// start runs Prometheus listening on addr and waits until it is ready.
func (p *Prometheus) start(dir, file, addr string) error {
	p.cmd = exec.Command(Binary, "--config.file="+file, "--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--storage.tsdb.retention.time=1h", "--log.level=warn")
	// One core is plenty for one target; the machine is shared.
	p.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	p.logs = &testserver.Output{}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	cmd := p.cmd
	go func() { cmd.Wait(); close(exited) }()
	p.exited = exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("prometheus exited:\n%s\nconfiguration:\n%s", p.logs, p.Config)
		default:
		}
		if resp, err := http.Get(p.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("prometheus not ready after 30s:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond) // waiting for another process
	}
}

// Logs returns what Prometheus printed so far.
func (p *Prometheus) Logs() string { return p.logs.String() }

// Stop ends Prometheus.
func (p *Prometheus) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		<-p.exited
		p.cmd = nil
	}
}

// Sample is one series of a query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates the PromQL expression expr now (an instant query,
// /api/v1/query) and returns its series; a scalar answer is one Sample
// without labels.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", expr, resp.Status, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, out.Error)
	}
	switch out.Data.ResultType {
	case "vector":
		var rs []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(out.Data.Result, &rs); err != nil {
			return nil, err
		}
		samples := make([]Sample, 0, len(rs))
		for _, r := range rs {
			v, err := value(r.Value[1])
			if err != nil {
				return nil, err
			}
			samples = append(samples, Sample{Labels: r.Metric, Value: v})
		}
		return samples, nil
	case "scalar":
		var r [2]any
		if err := json.Unmarshal(out.Data.Result, &r); err != nil {
			return nil, err
		}
		v, err := value(r[1])
		return []Sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("query %s: result type %s", expr, out.Data.ResultType)
}

// value reads a sample value, which the API sends as a string.
func value(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// Await queries expr until ok accepts its samples and returns them; it
// fails t when within passes first, with the last answer and Prometheus's
// view of the target.
func (p *Prometheus) Await(t testing.TB, expr string, within time.Duration, ok func([]Sample) bool) []Sample {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []Sample
	var err error
	for {
		last, err = p.Query(context.Background(), expr)
		if err == nil && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			up, _ := p.Query(context.Background(), "up")
			t.Fatalf("%s: after %s: %v (err %v); up: %v\nprometheus:\n%s", expr, within, last, err, up, p.Logs())
		}
		time.Sleep(100 * time.Millisecond) // the next scrape comes within ScrapeInterval
	}
}

// Value returns the value of the one sample of samples, and false when
// there is not exactly one.
func Value(samples []Sample) (float64, bool) {
	if len(samples) != 1 {
		return 0, false
	}
	return samples[0].Value, true
}
