package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/sluis-gateway/sluis/internal/jupytertest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

const notebookHost = "notebook.sluis.test"

// Issue 12, a real app: Jupyter Notebook (Debian's), which checks Origin
// and Referer against the Host it is asked by, keeps Host names it does not
// know out (against DNS rebinding), and talks to its kernel over a
// WebSocket. In Chromium a user logs in to sluis, then to Jupyter with its
// token, opens the notebook, runs its cell with Shift+Enter and sees the
// cell's output, which the kernel sends back over the WebSocket through
// sluis; the notebook also downloads as a file.
//
// Two ways an operator may put Jupyter behind sluis, each with nothing of
// Jupyter's checks switched off:
//   - both as they come: sluis asks Jupyter by its own address, and
//     translates the Origin and Referer of Jupyter's pages to it;
//   - preserve_host: Jupyter sees its public name, which it must then be
//     told is its own (local_hostnames; not allow_remote_access, which
//     would let any name in).
func TestJupyterNotebookThroughSluis(t *testing.T) {
	chromium(t)
	for _, tt := range []struct {
		name    string
		sluis   string   // more of the app's configuration in sluis
		jupyter []string // lines of jupyter_notebook_config.py
	}{
		{"defaults", "", nil},
		{"preserve_host", "    preserve_host: true\n", []string{fmt.Sprintf("c.NotebookApp.local_hostnames = [%q]", notebookHost)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			nb := jupytertest.Start(t, tt.jupyter...)
			t.Logf("Jupyter Notebook answered after %s", nb.Started.Round(time.Millisecond))
			g := testenv.Start(t, testenv.App{Name: "notebook", Host: notebookHost, Upstream: nb.URL, Groups: []string{"staff"}, MFA: true, Extra: tt.sluis})
			secret := g.AddUser("anna", pw, "staff")
			b := &tab{t: t, ctx: newBrowser(t, 120*time.Second, ignoreCertificates), logs: func() string {
				return "sluis:\n" + g.Logs() + "\njupyter:\n" + nb.Log()
			}}

			notebook := g.URL(notebookHost, "/notebooks/"+jupytertest.NotebookPath)
			b.step("the notebook sends a browser without a session to sluis's login page", stepTime,
				chromedp.Navigate(notebook),
				chromedp.WaitVisible(chromedp.ID("username")))
			b.step("the password leads to the code form", stepTime,
				chromedp.SendKeys(chromedp.ID("username"), "anna"),
				chromedp.SendKeys(chromedp.ID("password"), pw),
				chromedp.Submit(chromedp.ID("password")),
				chromedp.WaitVisible(chromedp.ID("code")))
			b.step("the code leads back to the notebook, where Jupyter asks for its password or token", stepTime,
				chromedp.SendKeys(chromedp.ID("code"), g.Code("anna", secret)),
				chromedp.Submit(chromedp.ID("code")),
				chromedp.WaitVisible(chromedp.ID("password_input")))
			var loc string
			b.step("Jupyter's token opens the notebook with its cell", stepTime,
				chromedp.SendKeys(chromedp.ID("password_input"), nb.Token),
				chromedp.Submit(chromedp.ID("password_input")),
				chromedp.WaitVisible(chromedp.CSS(".cell.code_cell .CodeMirror")),
				into(&loc, chromedp.Location()))
			if loc != notebook {
				t.Fatalf("the notebook opened at %s, not %s", loc, notebook)
			}
			// The page starts a kernel over the API (a POST, whose Origin
			// Jupyter checks) and connects to it over a WebSocket (Origin
			// checked again); the kernel indicator then turns idle.
			b.until("the kernel indicator shows a connected, idle kernel", 30*time.Second,
				`document.querySelector("#kernel_indicator_icon.kernel_idle_icon") !== null && Jupyter.notebook.kernel.is_connected()`)
			b.step("Shift+Enter in the cell runs it", stepTime,
				chromedp.Click(chromedp.CSS(".cell.code_cell .CodeMirror")),
				chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)))
			b.until(fmt.Sprintf("the cell's output %q shows", jupytertest.Output), 30*time.Second, fmt.Sprintf(
				`Array.from(document.querySelectorAll(".cell.code_cell .output_area .output_text")).some(e => e.innerText.trim() === %q)`, jupytertest.Output))
			var shot []byte
			b.step("a screenshot", stepTime, into(&shot, chromedp.FullScreenshot(100)))
			os.WriteFile(filepath.Join(artifacts(t), "jupyter-"+tt.name+".png"), shot, 0o644)

			// A download from the page is a GET that Jupyter lets through
			// on a Referer of its own.
			var download string
			b.step("the notebook downloads from its page", stepTime, into(&download, chromedp.Evaluate[string](
				`fetch("/files/`+jupytertest.NotebookPath+`?download=1").then(r => r.status + " " + r.headers.get("Content-Disposition"))`,
				chromedp.EvalAwaitPromise)))
			if !strings.HasPrefix(download, "200 attachment") {
				t.Errorf("downloading the notebook: %s\n%s", download, nb.Log())
			}
			t.Logf("from Jupyter's start to the cell's output: %s", time.Since(start).Round(time.Millisecond))
		})
	}
}
