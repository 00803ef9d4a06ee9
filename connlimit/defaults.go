package connlimit

// Defaults when the configuration leaves them out.
const (
	// DefaultMaxPerSource lets one address hold 256 connections: a
	// browser keeps one HTTP/2 connection per host (six with HTTP/1.1),
	// so this is some forty to eighty people behind one NAT address,
	// while one machine alone can hold only a small share of Max.
	DefaultMaxPerSource = 256
	// maxDefault bounds the derived total: an idle TLS connection costs
	// tens of KiB of memory, so a very high descriptor limit must not
	// turn into gigabytes of idle connections.
	maxDefault = 32768
	// minReserve descriptors stay out of the client connections' reach
	// whatever the limit: the SQLite database and its journal, the
	// listener, logs, LDAP and syslog connections, the CA and key files.
	minReserve = 256
)

// DefaultMax derives the cap on open client connections from the soft
// limit on open files: a reserve of a tenth (at least 256) stays for the
// process's own files, and of the rest half goes to client connections
// and half to the connections the gateway opens upstream for them
// (proxied requests and tunnels: up to one per client connection, and
// only logged-in users get them). It is at most 32768. An unknown limit
// (0) gives 4096.
func DefaultMax(fileLimit uint64) int {
	if fileLimit == 0 {
		return 4096
	}
	reserve := max(fileLimit/10, minReserve)
	if fileLimit <= 2*reserve {
		// A tiny limit: a quarter for clients, and never none.
		return max(int(fileLimit/4), 1)
	}
	return int(min((fileLimit-reserve)/2, maxDefault))
}
