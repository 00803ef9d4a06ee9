package connect

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Credentials are the tokens `sluis connect` keeps, one per gateway, in a
// file only its user can read. A token is a session like a browser's:
// `sluis session revoke` ends it.
type Credentials struct {
	Gateways map[string]Credential `json:"gateways"`
}

// Credential is the login at one gateway.
type Credential struct {
	Token string    `json:"token"`
	User  string    `json:"user,omitempty"`
	Saved time.Time `json:"saved"`
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
	c := &Credentials{Gateways: map[string]Credential{}}
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
	if err := json.Unmarshal(b, c); err != nil {
		return nil, errors.New(path + ": not a credentials file: " + err.Error())
	}
	if c.Gateways == nil {
		c.Gateways = map[string]Credential{}
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
