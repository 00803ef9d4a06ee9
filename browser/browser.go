package connect

import (
	"os/exec"
	"runtime"
)

// OpenBrowser tries to show url in the user's browser. It is best effort:
// the URL is printed as well, for a terminal without a desktop.
func OpenBrowser(url string) {
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
