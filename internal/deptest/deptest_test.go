// Package deptest keeps the architecture's import rules true: it reads the
// imports of every non-test Go file and fails when a package imports what
// it must not (as Tailscale's tstest/deptest does).
package deptest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluis-gateway/sluis"

// imports returns, for each package directory (relative to the repository
// root), the set of packages its non-test files import.
func imports(t *testing.T) map[string]map[string]bool {
	root := filepath.Join("..", "..")
	out := map[string]map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "artifacts" || strings.HasPrefix(name, "zz")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		if out[dir] == nil {
			out[dir] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[dir][p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func own(p string) (string, bool) {
	if p == module {
		return ".", true
	}
	if strings.HasPrefix(p, module+"/") {
		return strings.TrimPrefix(p, module+"/"), true
	}
	return "", false
}

func TestImportRules(t *testing.T) {
	all := imports(t)
	if len(all) < 10 {
		t.Fatalf("found only %d packages; is the walk broken?", len(all))
	}
	for dir, imps := range all {
		for imp := range imps {
			ownPkg, isOwn := own(imp)
			switch {
			// The root package (domain types) imports nothing of ours.
			case dir == "." && isOwn:
				t.Errorf("root package imports %s", imp)
			// Decisions are pure: policy imports only the root and the
			// standard library.
			case dir == "policy" && (isOwn && ownPkg != "." || strings.Contains(imp, ".") && !isOwn):
				t.Errorf("policy imports %s", imp)
			// Only the wiring picks a store.
			case isOwn && strings.HasPrefix(ownPkg, "store/") && !strings.HasPrefix(dir, "store/") &&
				dir != "internal/cli" && !strings.HasPrefix(dir, "bench/"):
				t.Errorf("%s imports the store implementation %s; only internal/cli (and benchmark programs) pick a store", dir, imp)
			// The server never starts a process. Only benchmark programs,
			// build tools and the packages made for it may: browser (for
			// the client) and the real servers for tests (testServers).
			case imp == "os/exec" && !strings.HasPrefix(dir, "bench/") && !strings.HasPrefix(dir, "tools/") && dir != "browser" && !testServers[dir]:
				t.Errorf("%s imports os/exec", dir)
			// No unsafe and no cgo on request paths.
			case imp == "unsafe" || imp == "C":
				t.Errorf("%s imports %s", dir, imp)
			// Templates come only from html/template with embedded files.
			case imp == "text/template" && dir != "internal/cli":
				t.Errorf("%s imports text/template", dir)
			// selfcheck is an outside client of any gateway: it imports
			// nothing of ours, and only the CLI uses it.
			case dir == "selfcheck" && isOwn:
				t.Errorf("selfcheck imports %s; it checks gateways from outside and knows nothing of sluis's insides", imp)
			case isOwn && ownPkg == "selfcheck" && dir != "internal/cli":
				t.Errorf("%s imports selfcheck; only the CLI may", dir)
			// connect is the tunnel client: nothing of the server imports
			// it, and it imports nothing of ours.
			case dir == "connect" && isOwn:
				t.Errorf("connect imports %s; the client knows the server only by its API", imp)
			case isOwn && ownPkg == "connect" && dir != "internal/cli" && !strings.HasPrefix(dir, "bench/"):
				t.Errorf("%s imports connect; only the CLI (and benchmark programs) may", dir)
			// The test harnesses are for tests (and the real servers for
			// benchmark programs) only.
			case isOwn && ownPkg == "internal/testenv":
				t.Errorf("%s imports internal/testenv; only tests may", dir)
			case isOwn && ownPkg == "internal/storefault" && dir != "internal/testenv":
				t.Errorf("%s imports internal/storefault; only tests (through internal/testenv) may", dir)
			case isOwn && testServers[ownPkg] && !strings.HasPrefix(dir, "bench/"):
				t.Errorf("%s imports %s; only tests (and benchmark programs) may", dir, ownPkg)
			case isOwn && ownPkg == "internal/testserver" && !testServers[dir]:
				t.Errorf("%s imports internal/testserver; only the packages that run test servers may", dir)
			case (dir == "browser" || testServers[dir]) && isOwn && ownPkg != "internal/testserver":
				t.Errorf("%s imports %s; a package that starts processes imports nothing of ours but internal/testserver", dir, imp)
			// No pprof or expvar anywhere in the server.
			case imp == "net/http/pprof" || imp == "expvar":
				t.Errorf("%s imports %s", dir, imp)
			}
		}
	}
}

// testServers are the packages that run a real server (slapd, Apache
// httpd, RabbitMQ, Jupyter Notebook, HAProxy, PostgreSQL) for tests and
// benchmark programs.
var testServers = map[string]bool{"internal/slapdtest": true, "internal/davtest": true, "internal/rabbittest": true, "internal/jupytertest": true,
	"internal/haproxytest": true, "internal/pgtest": true}

// Nothing the server is made of starts a process: no package reachable
// from the gateway's handler or from the program's wiring of `sluis serve`
// imports os/exec, whatever path leads there. The only importer of the
// browser package is the CLI's connect command.
func TestTheServerStartsNoProcess(t *testing.T) {
	all := imports(t)
	seen := map[string]bool{}
	var walk func(dir, via string)
	walk = func(dir, via string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		for imp := range all[dir] {
			if imp == "os/exec" {
				t.Errorf("%s imports os/exec (reached from the server through %s)", dir, via)
			}
			if own, ok := own(imp); ok {
				walk(own, via+" -> "+own)
			}
		}
	}
	for _, root := range []string{"gateway", "store/sqlite", "store/postgres", "changes", "keys", "config", "audit"} {
		walk(root, root)
	}
	if len(seen) < 10 {
		t.Fatalf("reached only %d packages from the server; is the walk broken?", len(seen))
	}
	for file, imps := range fileImports(t, "internal/cli") {
		if imps[module+"/browser"] && file != "connect.go" {
			t.Errorf("internal/cli/%s imports browser; only the connect command may", file)
		}
	}
	for dir, imps := range all {
		if imps[module+"/browser"] && dir != "internal/cli" {
			t.Errorf("%s imports browser; only the CLI's connect command may", dir)
		}
	}
}

// fileImports returns the imports of each non-test Go file of dir.
func fileImports(t *testing.T, dir string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for name, src := range sources(t, dir) {
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = map[string]bool{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[name][p] = true
		}
	}
	return out
}

// The packages that serve requests must not reach a file by a name derived
// from a request: none of them may open files at all. (Keys and the store
// read only fixed names in the data directory and are used at start-up.)
func TestRequestPathOpensNoFiles(t *testing.T) {
	requestPath := []string{"frontdoor", "proxyproto", "portal", "proxy", "gateway", "policy", "session", "errpage", "locale", "assertion", "audit", "mfa", "authn"}
	for _, dir := range requestPath {
		for name, src := range sources(t, dir) {
			for _, call := range []string{"os.Open", "os.ReadFile", "os.Create", "os.WriteFile", "http.Dir(", "http.FileServer", "ServeFile", "template.ParseFiles", "template.ParseGlob", "template.New(", "os.DirFS"} {
				if strings.Contains(src, call) {
					t.Errorf("%s/%s uses %s", dir, name, call)
				}
			}
		}
	}
}

// Nothing before login makes an outbound request to a place a request
// names: only the proxy and tunnels (after the session and policy checks)
// and the upstream transport dial out, and the directory and single
// sign-on packages reach only the servers the operator configured. The
// other packages that serve requests use no HTTP client and no dialer at
// all.
func TestOnlyTheProxyDialsOut(t *testing.T) {
	for _, dir := range []string{"frontdoor", "proxyproto", "portal", "gateway", "policy", "session", "errpage", "assertion", "audit", "mfa", "authn", "changes", "keys", "config", "store/sqlite"} {
		for name, src := range sources(t, dir) {
			for _, call := range []string{"http.Client", "http.Get(", "http.Post(", "http.Head(", "http.DefaultClient", "http.Transport", "net.Dial", "net.Dialer", ".RoundTrip(", "tls.Dial"} {
				if dir == "changes" && strings.HasPrefix(call, "net.Dial") {
					continue // the local announcement socket of the CLI, never a network address
				}
				if dir == "audit" && name == "syslog.go" && (strings.HasPrefix(call, "net.Dial") || call == "tls.Dial") {
					continue // the syslog receiver the operator configured; no request names it
				}
				if strings.Contains(src, call) {
					t.Errorf("%s/%s uses %s", dir, name, call)
				}
			}
		}
	}
}

// sources returns the non-test Go files of a package directory (relative
// to the repository root) by name.
func sources(t *testing.T, dir string) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..", dir)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(src)
	}
	if len(out) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return out
}
