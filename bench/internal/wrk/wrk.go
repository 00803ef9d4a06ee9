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
	// Procs, when set, names the processes that serve the target (a
	// proxy's master and workers), whose CPU time per request is then
	// measured: a figure that a busy machine moves much less than the
	// requests per second.
	Procs func() []int
}

// Result holds the figures of one measurement.
type Result struct {
	RPS      float64
	P50, P99 time.Duration
	Errors   int
	// Requests is the number of requests answered (wrk's count; h2load's
	// succeeded).
	Requests int
	// Non2xx counts the answers that were not 2xx (wrk's "Non-2xx or 3xx
	// responses"; h2load's 3xx, 4xx and 5xx).
	Non2xx int
	// CPU is the CPU time (user and system) the target's processes spent
	// per request, or 0 when it has no Procs.
	CPU time.Duration
}

// Median returns the result with the median requests/s.
func Median(rs []Result) Result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
	return rs[len(rs)/2]
}

var (
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	countRE  = regexp.MustCompile(`(\d+) requests in `)
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
	cpu0 := ProcsCPU(t.Procs)
	out, err := exec.Command("wrk", args...).CombinedOutput()
	cpu := ProcsCPU(t.Procs) - cpu0
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
	if m := countRE.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
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
		if em[1] != "" {
			r.Non2xx, _ = strconv.Atoi(em[1])
		}
	}
	n := float64(r.Requests)
	if n == 0 {
		n = r.RPS * dur.Seconds()
	}
	if t.Procs != nil && n > 0 {
		r.CPU = time.Duration(float64(cpu) / n)
	}
	return r, nil
}

// ProcsCPU returns the CPU time (user and system, from /proc/PID/stat)
// that the processes procs names have used so far; 0 for nil.
func ProcsCPU(procs func() []int) time.Duration {
	if procs == nil {
		return 0
	}
	var ticks int64
	for _, pid := range procs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command name (which may hold spaces):
		// utime and stime are the 14th and 15th of the line.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + k
		}
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// Children returns pid and the processes whose parent is pid (nginx's
// master and its workers).
func Children(pid int) []int {
	out := []int{pid}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		c, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// Close is Run with "Connection: close" on every request: each request
// then has a connection, and a TLS handshake, of its own (wrk makes no
// use of TLS session resumption), which is what a flood of new clients
// costs.
func Close(t Target, dur time.Duration, conns int) (Result, error) {
	t.Headers = append(slices.Clone(t.Headers), "Connection: close")
	return Run(t, dur, conns)
}

var (
	h2rpsRE   = regexp.MustCompile(`finished in [\d.]+m?s, ([\d.]+) req/s`)
	h2reqsRE  = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2protoRE = regexp.MustCompile(`Application protocol: (\S+)`)
	h2codesRE = regexp.MustCompile(`status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// RunH2 loads t over HTTP/2 with h2load: conns connections (two
// threads), one request at a time on each, as wrk does over HTTP/1.1, for
// dur. The latency percentiles come from h2load's per-request log. It
// fails unless the connections spoke HTTP/2 (h2).
func RunH2(t Target, dur time.Duration, conns int) (Result, error) {
	logf, err := os.CreateTemp("", "h2load-*.log")
	if err != nil {
		return Result{}, err
	}
	logf.Close()
	defer os.Remove(logf.Name())
	args := []string{"-t2", fmt.Sprintf("-c%d", conns), "-m1", fmt.Sprintf("-D%d", int(dur.Seconds())),
		"--warm-up-time=1", "--log-file=" + logf.Name()}
	for _, h := range t.Headers {
		k, v, _ := strings.Cut(h, ": ")
		if strings.EqualFold(k, "Host") {
			k = ":authority"
		}
		args = append(args, "-H", k+": "+v)
	}
	args = append(args, t.URL)
	cpu0 := ProcsCPU(t.Procs)
	out, err := exec.Command("h2load", args...).CombinedOutput()
	cpu := ProcsCPU(t.Procs) - cpu0
	s := string(out)
	if err != nil {
		return Result{}, fmt.Errorf("h2load: %v\n%s", err, s)
	}
	if m := h2protoRE.FindStringSubmatch(s); m == nil || m[1] != "h2" {
		return Result{}, fmt.Errorf("h2load did not speak HTTP/2:\n%s", s)
	}
	var r Result
	m := h2rpsRE.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("no req/s in h2load output:\n%s", s)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := h2reqsRE.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.Atoi(m[3])
	}
	if m := h2codesRE.FindStringSubmatch(s); m != nil {
		for _, n := range m[1:] {
			v, _ := strconv.Atoi(n)
			r.Non2xx += v
		}
	}
	b, err := os.ReadFile(logf.Name())
	if err != nil {
		return r, err
	}
	var lat []time.Duration
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			continue
		}
		// Errors come from the log alone: a failed stream is -1, another
		// answer its status; 0 is a request still under way when the time
		// was up.
		if f[1] == "0" {
			continue
		}
		if f[1] != "200" {
			r.Errors++
			continue
		}
		us, _ := strconv.ParseInt(f[2], 10, 64)
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("h2load logged no answered request:\n%s", s)
	}
	r.P50, r.P99 = Pct(lat, 50), Pct(lat, 99)
	// The CPU time includes h2load's warm-up second, whose requests it
	// does not count: they are counted at the measured rate (an
	// approximation).
	if n := r.RPS * (dur.Seconds() + 1); t.Procs != nil && n > 0 {
		r.CPU = time.Duration(float64(cpu) / n)
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

// Runner loads one target with conns connections for dur and reads the
// figures: Run (wrk, HTTP/1.1 kept alive), Close (wrk, a new connection
// and TLS handshake for every request) or RunH2 (h2load, HTTP/2).
type Runner func(t Target, dur time.Duration, conns int) (Result, error)

// Interleave measures every target in turn with wrk (see InterleaveWith).
func Interleave(targets []Target, rounds int, dur time.Duration, conns int) (Runs, error) {
	return InterleaveWith(Run, targets, rounds, dur, conns)
}

// InterleaveWith measures every target in turn with run, rounds times,
// printing each measurement, then the median of each target's rounds.
// Interleaving makes machine noise hit all targets alike; every other
// round goes in reverse order, so that no target always follows the same
// one.
func InterleaveWith(run Runner, targets []Target, rounds int, dur time.Duration, conns int) (Runs, error) {
	runs := Runs{}
	for r := 1; r <= rounds; r++ {
		order := append([]Target(nil), targets...)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			res, err := run(t, dur, conns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, err)
			}
			runs[t.Name] = append(runs[t.Name], res)
			fmt.Printf("  round %d %-8s %9.0f req/s  p50 %7s  p99 %7s  errors %d%s\n", r, t.Name, res.RPS, res.P50, res.P99, res.Errors, cpuNote(res))
		}
	}
	fmt.Println("median of rounds:")
	for _, t := range targets {
		m := runs.Median(t.Name)
		fmt.Printf("  %-8s %9.0f req/s  p50 %7s  p99 %7s%s\n", t.Name, m.RPS, m.P50, m.P99, cpuNote(runs.MedianCPU(t.Name)))
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

func cpuNote(r Result) string {
	if r.CPU == 0 {
		return ""
	}
	return fmt.Sprintf("  CPU %5.1f µs/request", float64(r.CPU)/float64(time.Microsecond))
}

// MedianCPU returns a Result holding the median over rounds of name's CPU
// time per request.
func (r Runs) MedianCPU(name string) Result {
	var c []time.Duration
	for _, x := range r[name] {
		c = append(c, x.CPU)
	}
	if len(c) == 0 {
		return Result{}
	}
	slices.Sort(c)
	return Result{CPU: c[len(c)/2]}
}

// CPURatio returns the median over rounds of a's CPU time per request
// divided by b's in the same round (lower is better for a).
func (r Runs) CPURatio(a, b string) float64 {
	var q []float64
	for i := range r[a] {
		if i < len(r[b]) && r[b][i].CPU > 0 {
			q = append(q, float64(r[a][i].CPU)/float64(r[b][i].CPU))
		}
	}
	if len(q) == 0 {
		return 0
	}
	sort.Float64s(q)
	return q[len(q)/2]
}
