package e2e

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
)

// One gateway per data directory: a second `sluis serve` on it refuses,
// naming the first one's process, while the CLI's commands still work
// beside the running gateway.
func TestSecondServeOnADataDirRefuses(t *testing.T) {
	w := setup(t)
	g := w.g
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := cli.Run(ctx, []string{"sluis", "--config", g.ConfigPath, "serve"}, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if ctx.Err() != nil {
		t.Fatal("a second serve on the same data_dir ran")
	}
	if err == nil || !strings.Contains(err.Error(), "in use by process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second serve: %v\n%s", err, errb.String())
	}
	g.MustCLI("", "block", "list")
	// The first one still serves.
	if p := g.Get(g.Client(), g.URL(g.Portal, "/login")); p.StatusCode != 200 {
		t.Fatalf("the first gateway: %d", p.StatusCode)
	}
}
