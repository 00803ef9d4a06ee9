// Package browser opens an address in the user's web browser. It starts a
// process (xdg-open, open or rundll32), so it is client-side only: the
// `sluis connect` command uses it, and no package of the server may
// (internal/deptest checks this).
package browser

import (
	"os/exec"
	"runtime"
)

// Open tries to show url in the user's browser. It is best effort:
// the URL is printed as well, for a terminal without a desktop.
func Open(url string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}
