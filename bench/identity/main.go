// Command identity measures the two ways a password is checked: logins
// per second per core with argon2id at sluis's cost (local users), and
// the latency of a directory login (search, the user's own bind, groups
// with nesting) against a real slapd on loopback, with a plain LDAPS
// service bind measured in the same run as the baseline.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/identity [-d 3s] [-n 500]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/internal/slapdtest"
)

func main() {
	d := flag.Duration("d", 3*time.Second, "how long argon2id verifies run")
	n := flag.Int("n", 500, "directory logins timed")
	flag.Parse()
	if err := run(*d, *n); err != nil {
		log.Fatal(err)
	}
}

func run(d time.Duration, n int) error {
	// argon2id, one goroutine: logins per second per core.
	hash, err := authn.Hash("correct horse battery", authn.DefaultParams)
	if err != nil {
		return err
	}
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t := time.Now()
		if ok, err := authn.Verify("correct horse battery", hash); err != nil || !ok {
			return fmt.Errorf("verify: %v %v", ok, err)
		}
		lat = append(lat, time.Since(t))
	}
	rate := float64(len(lat)) / time.Since(start).Seconds()
	fmt.Printf("bench/identity, %d cores\n", runtime.NumCPU())
	fmt.Printf("  argon2id (%d KiB, t=%d, p=%d): %.1f logins/s per core, p50 %s p99 %s\n",
		authn.DefaultParams.Memory, authn.DefaultParams.Time, authn.DefaultParams.Threads, rate, wrk.Pct(lat, 50), wrk.Pct(lat, 99))

	dir, err := os.MkdirTemp("", "sluis-bench-identity-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := slapdtest.Run(dir)
	if err != nil {
		return err
	}
	defer s.Stop()
	pem, _ := os.ReadFile(s.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	dirc, err := directory.New(directory.Config{URLs: []string{s.LDAPSURL}, RootCAs: pool, BindDN: s.BindDN, BindPassword: s.BindPassword,
		UserBase: "ou=people," + s.BaseDN, UserFilter: "(&(objectClass=inetOrgPerson)(uid={user}))", GroupBase: "ou=groups," + s.BaseDN,
		DisabledFilter: "(employeeType=disabled)", Groups: map[string]string{"cn=vpn-staff,ou=groups,dc=corp,dc=test": "staff"}})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var login, bind, resolve []time.Duration
	for i := 0; i < n; i++ {
		user, pw := "carol", "carol-pass"
		if i%2 == 1 {
			user, pw = "erin", "erin-pass" // through a nested group
		}
		t := time.Now()
		if _, err := dirc.Authenticate(ctx, user, pw); err != nil {
			return err
		}
		login = append(login, time.Since(t))

		// The look-up a portal login now makes first, so that throttles
		// count the account, not the typed name.
		t = time.Now()
		if _, err := dirc.Resolve(ctx, user); err != nil {
			return err
		}
		resolve = append(resolve, time.Since(t))

		t = time.Now()
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(newTLS(pool)))
		if err != nil {
			return err
		}
		if err := c.Bind(s.BindDN, s.BindPassword); err != nil {
			return err
		}
		c.Close()
		bind = append(bind, time.Since(t))
	}
	fmt.Printf("  directory login (LDAPS, search, user bind, nested groups): p50 %s p99 %s over %d logins\n", wrk.Pct(login, 50), wrk.Pct(login, 99), n)
	fmt.Printf("  name look-up before the throttles (search, pooled):     p50 %s p99 %s\n", wrk.Pct(resolve, 50), wrk.Pct(resolve, 99))
	fmt.Printf("  baseline: one LDAPS connection and bind:                  p50 %s p99 %s\n", wrk.Pct(bind, 50), wrk.Pct(bind, 99))
	fmt.Printf("ratio: directory login / connect-and-bind (p50) %.2f\n", float64(wrk.Pct(login, 50))/float64(wrk.Pct(bind, 50)))
	fmt.Printf("ratio: (look-up + login) / login (p50) %.2f\n", float64(wrk.Pct(resolve, 50)+wrk.Pct(login, 50))/float64(wrk.Pct(login, 50)))
	return nil
}

func newTLS(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
