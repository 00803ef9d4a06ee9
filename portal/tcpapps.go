package portal

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/policy"
)

// RDPPort is the local port the launcher's remote-desktop files and
// commands use: the client listens there, the user's RDP client connects
// there.
const RDPPort = 13389

func isRDP(app sluis.App) bool {
	_, port, _ := net.SplitHostPort(app.TCP)
	return port == "3389"
}

// connectCommand is what the launcher tells the user to run for a TCP
// app, and the path of its .rdp file for a remote desktop.
//
// Each works when copied as shown: the client listens on a free local port
// and prints it (no PORT to fill in), and carries the demo's --connect and
// --ca when there are such (Face.ConnectArgs).
func (p *Portal) connectCommand(app sluis.App) (cmd, rdp string) {
	args := []string{"sluis", "connect", shellQuote(app.Name), "--gateway", shellQuote(p.BaseURL(p.Host))}
	for _, a := range p.Face.ConnectArgs {
		args = append(args, shellQuote(a))
	}
	_, port, _ := net.SplitHostPort(app.TCP)
	switch {
	case isRDP(app):
		return strings.Join(append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", RDPPort)), " "), "/rdp/" + app.Name
	case port == "22":
		return fmt.Sprintf("ssh -o ProxyCommand=%s USER@%s", shellQuote(strings.Join(append(args, "--stdio"), " ")), app.Name), ""
	}
	return strings.Join(args, " "), ""
}

// rdpFile is a remote-desktop file that points the user's RDP client at
// the local end of `sluis connect`. Its content comes from configuration
// only; the app is looked up by exact name.
func (p *Portal) rdpFile(w http.ResponseWriter, r *http.Request) error {
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	name := r.PathValue("app")
	for _, app := range p.Apps {
		if app.Name != name || app.TCP == "" || !isRDP(app) {
			continue
		}
		sit, err := p.situation(r.Context(), app.Name)
		if err != nil {
			return err
		}
		if !listable(policy.Decide(a.Identity(), app, launchRequest(r, app), sit)) {
			return statusError(http.StatusNotFound)
		}
		w.Header().Set("Content-Type", "application/x-rdp")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", app.Name+".rdp"))
		w.Header().Set("Cache-Control", "no-store")
		_, err = fmt.Fprintf(w, "full address:s:127.0.0.1:%d\r\nprompt for credentials:i:1\r\nauthentication level:i:2\r\n", RDPPort)
		return err
	}
	return statusError(http.StatusNotFound)
}
