// Package wrk runs the wrk load generator for the benchmark programs and
// reads its figures.
package wrk

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Target is what one measurement loads.
type Target struct {
	Name    string
	URL     string
	Headers []string
}

// Result holds the figures of one measurement.
type Result struct {
	RPS      float64
	P50, P99 time.Duration
	Errors   int
}

// Median returns the result with the median requests/s.
func Median(rs []Result) Result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
	return rs[len(rs)/2]
}

var (
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	pctRE    = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)`)
	errorsRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// Run loads t with conns connections for dur (two threads) and reads the
// figures.
func Run(t Target, dur time.Duration, conns int) (Result, error) {
	args := []string{"-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(dur.Seconds())), "--latency"}
	for _, h := range t.Headers {
		args = append(args, "-H", h)
	}
	args = append(args, t.URL)
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r Result
	m := rpsRE.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", s)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, pm := range pctRE.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(pm[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[pm[3]]
		d := time.Duration(v * float64(unit))
		if pm[1] == "50" {
			r.P50 = d.Round(time.Microsecond)
		} else {
			r.P99 = d.Round(time.Microsecond)
		}
	}
	for _, em := range errorsRE.FindAllStringSubmatch(s, -1) {
		for _, n := range em[1:] {
			v, _ := strconv.Atoi(n)
			r.Errors += v
		}
	}
	return r, nil
}

// Ensure installs pkg from Debian's packages when cmd is missing.
func Ensure(cmd, pkg string) error {
	if _, err := exec.LookPath(cmd); err == nil {
		return nil
	}
	fmt.Printf("bench: installing %s from Debian's packages\n", pkg)
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// Check sends one request as wrk would (same URL and headers, certificate
// not checked: the benchmark's own local servers) and fails unless it is
// answered with status and, when size >= 0, a body of size bytes. It makes
// sure a benchmark measures what it claims to.
func Check(t Target, status, size int) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest("GET", t.URL, nil)
	if err != nil {
		return err
	}
	for _, h := range t.Headers {
		k, v, _ := strings.Cut(h, ": ")
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || size >= 0 && len(b) != size {
		return fmt.Errorf("%s: check request answered %d with %d bytes", t.Name, resp.StatusCode, len(b))
	}
	return nil
}

// Runs holds every measurement of an Interleave, by target name, in round
// order.
type Runs map[string][]Result

// Median returns the result of name's round with the median requests/s.
func (r Runs) Median(name string) Result {
	return Median(append([]Result(nil), r[name]...))
}

// Ratio returns the median over rounds of a's requests/s divided by b's
// in the same round. Pairing the two measurements of a round cancels most
// of the noise that moves a whole round (a busy machine), which the ratio
// of two medians taken from different rounds does not.
func (r Runs) Ratio(a, b string) float64 {
	var q []float64
	for i := range r[a] {
		if i < len(r[b]) && r[b][i].RPS > 0 {
			q = append(q, r[a][i].RPS/r[b][i].RPS)
		}
	}
	if len(q) == 0 {
		return 0
	}
	sort.Float64s(q)
	return q[len(q)/2]
}

// Interleave measures every target in turn, rounds times, printing each
// measurement, then the median of each target's rounds. Interleaving makes
// machine noise hit all targets alike; every other round goes in reverse
// order, so that no target always follows the same one.
func Interleave(targets []Target, rounds int, dur time.Duration, conns int) (Runs, error) {
	runs := Runs{}
	for r := 1; r <= rounds; r++ {
		order := append([]Target(nil), targets...)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			res, err := Run(t, dur, conns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, err)
			}
			runs[t.Name] = append(runs[t.Name], res)
			fmt.Printf("  round %d %-8s %9.0f req/s  p50 %7s  p99 %7s  errors %d\n", r, t.Name, res.RPS, res.P50, res.P99, res.Errors)
		}
	}
	fmt.Println("median of rounds:")
	for _, t := range targets {
		m := runs.Median(t.Name)
		fmt.Printf("  %-8s %9.0f req/s  p50 %7s  p99 %7s\n", t.Name, m.RPS, m.P50, m.P99)
	}
	return runs, nil
}

// Pct returns the p-th percentile of d (nearest rank), rounded to
// microseconds; d is not changed.
func Pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(time.Microsecond)
}
