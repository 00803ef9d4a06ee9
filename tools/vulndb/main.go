// Command vulndb builds a local Go vulnerability database for govulncheck
// from the OSV reports in the golang.org/x/vulndb module, fetched through
// the Go module proxy. The test command uses it where the public database
// host cannot be reached: `govulncheck -db file://DIR ./...`.
//
//	go run ./tools/vulndb -out DIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// version pins the snapshot of the reports; raise it to learn of newer
// vulnerabilities (go list -m -versions golang.org/x/vulndb).
const version = "v0.0.0-20261105234957-e22db6528018"

type osv struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Events []struct {
				Fixed string `json:"fixed"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Fixed    string `json:"fixed,omitempty"`
}

type moduleEntry struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vulnEntry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
}

func main() {
	out := flag.String("out", "", "folder to write the database to")
	flag.Parse()
	if *out == "" {
		log.Fatal("vulndb: -out is required")
	}
	if err := build(*out); err != nil {
		log.Fatal("vulndb: ", err)
	}
}

func build(out string) error {
	raw, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/vulndb@"+version).Output()
	if err != nil {
		return fmt.Errorf("go mod download: %w", err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(raw, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download: %s %v", mod.Error, err)
	}
	// The snapshot's time, from its pseudo-version, stands in for the
	// reports' modification times, which the repository leaves unset.
	ts := version[strings.LastIndex(version, "-")-14 : strings.LastIndex(version, "-")]
	snap, err := time.Parse("20060102150405", ts)
	if err != nil {
		return err
	}
	stamp := snap.UTC().Format(time.RFC3339)

	files, err := filepath.Glob(filepath.Join(mod.Dir, "data", "osv", "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no OSV reports in %s", mod.Dir)
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return err
	}
	modules := map[string][]moduleVuln{}
	var vulns []vulnEntry
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var v osv
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if v.Modified == "" || strings.HasPrefix(v.Modified, "0001-") {
			v.Modified = stamp
		}
		vulns = append(vulns, vulnEntry{ID: v.ID, Modified: v.Modified, Aliases: v.Aliases})
		for _, a := range v.Affected {
			fixed := ""
			for _, r := range a.Ranges {
				for _, e := range r.Events {
					if e.Fixed != "" {
						fixed = e.Fixed
					}
				}
			}
			modules[a.Package.Name] = append(modules[a.Package.Name], moduleVuln{ID: v.ID, Modified: v.Modified, Fixed: fixed})
		}
		if err := os.WriteFile(filepath.Join(out, "ID", v.ID+".json"), b, 0o644); err != nil {
			return err
		}
	}
	var mods []moduleEntry
	for path, vs := range modules {
		mods = append(mods, moduleEntry{Path: path, Vulns: vs})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	for name, v := range map[string]any{"db": map[string]string{"modified": stamp}, "modules": mods, "vulns": vulns} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "index", name+".json"), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("vulndb: %d reports from golang.org/x/vulndb@%s in %s\n", len(vulns), version, out)
	return nil
}
