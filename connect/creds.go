package connect

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Credentials are the logins `sluis connect` keeps, one per gateway and
// user, in a file only its user can read. A login's token is a session like
// a browser's: `sluis connect --logout` or `sluis session revoke` ends it.
type Credentials struct {
	Logins []Login `json:"logins"`
	// Migrated says that the file was of the first format: saving it
	// writes the current one.
	Migrated bool `json:"-"`
}

// Login is one user's login at one gateway.
type Login struct {
	Gateway string `json:"gateway"` // as Key makes it
	// User is the name the gateway gave the login's user (its canonical,
	// lower-case name), not necessarily what was typed.
	User  string    `json:"user"`
	Token string    `json:"token"`
	Saved time.Time `json:"saved"`
}

// oldLogin is an entry of the first format, which kept one login per
// gateway (`{"gateways": {URL: {"token", "user", "saved"}}}`).
type oldLogin struct {
	Token string    `json:"token"`
	User  string    `json:"user"`
	Saved time.Time `json:"saved"`
}

// SameUser reports whether two user names are the same user: the gateway
// folds names to lower case.
func SameUser(a, b string) bool { return strings.EqualFold(a, b) }

// At returns the logins kept for gateway (a Key), oldest first.
func (c *Credentials) At(gateway string) []Login {
	var out []Login
	for _, l := range c.Logins {
		if l.Gateway == gateway {
			out = append(out, l)
		}
	}
	return out
}

// Find returns user's login at gateway.
func (c *Credentials) Find(gateway, user string) (Login, bool) {
	for _, l := range c.Logins {
		if l.Gateway == gateway && SameUser(l.User, user) {
			return l, true
		}
	}
	return Login{}, false
}

// Put keeps l, replacing the login of the same gateway and user.
func (c *Credentials) Put(l Login) {
	c.Remove(l.Gateway, l.User)
	c.Logins = append(c.Logins, l)
}

// Remove forgets user's login at gateway, and reports whether there was
// one.
func (c *Credentials) Remove(gateway, user string) bool {
	n := len(c.Logins)
	c.Logins = slices.DeleteFunc(c.Logins, func(l Login) bool { return l.Gateway == gateway && SameUser(l.User, user) })
	return len(c.Logins) != n
}

// Gateways returns the gateways with at least one login, sorted.
func (c *Credentials) Gateways() []string {
	var out []string
	for _, l := range c.Logins {
		out = append(out, l.Gateway)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CredentialsPath is where the credentials live: the user's config
// directory (XDG_CONFIG_HOME, or ~/.config), in sluis/connect.json.
func CredentialsPath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the login")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "sluis", "connect.json"), nil
}

// LoadCredentials reads the file; a missing file is no credentials. A file
// that others can read is refused: the tokens in it may have leaked.
func LoadCredentials(path string) (*Credentials, error) {
	c := &Credentials{}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, errors.New(path + " can be read by others; remove it (and revoke its sessions) or chmod 600 it")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		Logins   []Login             `json:"logins"`
		Gateways map[string]oldLogin `json:"gateways"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, errors.New(path + ": not a credentials file: " + err.Error())
	}
	for _, l := range file.Logins {
		if l.Token != "" {
			c.Put(l)
		}
	}
	// The first format: the login belongs to the user it recorded. The
	// gateway's name for that user is the lower-case one; the next check
	// of the login confirms it.
	for gw, old := range file.Gateways {
		if _, ok := c.Find(Key(gw), old.User); !ok && old.Token != "" {
			c.Put(Login{Gateway: Key(gw), User: strings.ToLower(old.User), Token: old.Token, Saved: old.Saved})
		}
		c.Migrated = true
	}
	return c, nil
}

// Save writes the file with mode 0600 (its folder 0700), replacing it in
// one step.
func (c *Credentials) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".connect-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Key is how a gateway is named in the file.
func Key(gateway string) string { return strings.TrimSuffix(strings.ToLower(gateway), "/") }
