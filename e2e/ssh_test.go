package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// TestMain lets this test binary stand in for the sluis program: ssh's
// ProxyCommand runs it with SLUIS_E2E_AS_SLUIS=1.
func TestMain(m *testing.M) {
	if os.Getenv("SLUIS_E2E_AS_SLUIS") == "1" {
		err := cli.Run(context.Background(), append([]string{"sluis"}, os.Args[1:]...), os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sluis:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
	os.Exit(m.Run())
}

// needTool finds a program, or skips (fails under
// SLUIS_REQUIRE_INTEGRATION=1).
func needTool(t *testing.T, name, pkg string) string {
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s not found, and SLUIS_REQUIRE_INTEGRATION=1 (install Debian's %s package)", name, pkg)
	}
	t.Skipf("%s not found; install Debian's %s package or run the README's test command", name, pkg)
	return ""
}

// startSSHD runs a real OpenSSH server on loopback that lets the current
// user in with a key made for the test; it returns its address and the
// client's key file.
func startSSHD(t *testing.T) (addr, key string) {
	sshd := needTool(t, "/usr/sbin/sshd", "openssh-server")
	keygen := needTool(t, "ssh-keygen", "openssh-client")
	dir := t.TempDir()
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
LogLevel ERROR
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"))
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(conf), 0o600)
	if os.Getuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // privilege separation, made by the service otherwise
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	await(t, 10*time.Second, "sshd listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, filepath.Join(dir, "client")
}

// OpenSSH through the tunnel: ssh with a ProxyCommand of
// `sluis connect APP --stdio` reaches a real sshd and runs a command that
// hashes what it is sent.
func TestSSHThroughTunnel(t *testing.T) {
	sshBin := needTool(t, "ssh", "openssh-client")
	addr, key := startSSHD(t)
	g := testenv.Start(t, testenv.App{Name: "build-box", TCP: addr, Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	// Log in once; the login is kept for the ProxyCommand.
	c := startConnect(t, g, dir, "build-box", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	c.cancel()

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	proxy := fmt.Sprintf("env SLUIS_E2E_AS_SLUIS=1 XDG_CONFIG_HOME=%s %s connect build-box --gateway %s --connect %s --ca %s --stdio",
		dir, self, g.URL(g.Portal, ""), g.Addr(), filepath.Join(g.Dir, "data", "ca.pem"))
	data := make([]byte, 4<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBin, "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "ProxyCommand="+proxy, me.Username+"@build-box", "echo through-sluis; sha256sum")
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh through the tunnel: %v\nstdout:\n%s\nstderr:\n%s\ngateway:\n%s", err, out.String(), errb.String(), g.Logs())
	}
	if !strings.Contains(out.String(), "through-sluis") || !strings.Contains(out.String(), hex.EncodeToString(sum[:])) {
		t.Fatalf("ssh output:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if audit := g.MustCLI("", "audit"); !strings.Contains(audit, "tunnel.open") || !strings.Contains(audit, "to "+addr) {
		t.Errorf("no tunnel in the audit trail:\n%s", audit)
	}
}
