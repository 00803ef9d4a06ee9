package cli

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/sluis-gateway/sluis/config"
)

// memory_limit sets a fixed soft limit; without it the limit follows the
// live heap; GOMEMLIMIT wins over both; each is undone when serve ends.
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		name   string
		limit  config.Size
		getenv func(string) string
		check  func(int64) bool
	}{
		{"fixed", 512 << 20, env(), func(l int64) bool { return l == 512<<20 }},
		{"follows", 0, env(), func(l int64) bool { return l >= 128<<20 && l < math.MaxInt64 }},
		{"GOMEMLIMIT wins", 512 << 20, env("GOMEMLIMIT", "1GiB"), func(l int64) bool { return l == before }},
	} {
		restore := setMemoryLimit(&config.Config{MemoryLimit: c.limit}, c.getenv)
		got := debug.SetMemoryLimit(-1)
		restore()
		if !c.check(got) {
			t.Errorf("%s: limit %d", c.name, got)
		}
		if l := debug.SetMemoryLimit(-1); l != before {
			t.Errorf("%s: after restore %d, want %d", c.name, l, before)
		}
	}
}
