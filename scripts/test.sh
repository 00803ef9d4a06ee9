#!/usr/bin/env bash
# The whole test suite, with every real component the tests need. It
# installs what is missing (Debian packages), then runs the tests with
# SLUIS_REQUIRE_INTEGRATION=1, under which a test whose dependency is
# missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release with the fixes govulncheck asks for; the go command fetches
# it through the module proxy on first use.
export GOTOOLCHAIN=go1.27.3

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# OpenSSH: the tunnel test runs ssh through sluis connect to a real sshd.
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
# OpenLDAP: the directory tests run a real slapd.
[ -x /usr/sbin/slapd ] || missing+=(slapd)
# Jupyter Notebook: TestJupyterNotebookThroughSluis runs a notebook cell in
# Chromium through sluis (its kernel, python3-ipykernel, comes with it).
command -v jupyter-notebook >/dev/null 2>&1 || missing+=(jupyter-notebook)
# OpenSSL's s_server: a TLS server with suites Go refuses to speak.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Apache httpd with mod_dav: e2e's TestWebDAV* tests put a real WebDAV
# server behind the gateway (internal/davtest).
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
# RabbitMQ with its management plugin: e2e's
# TestRabbitMQManagementAPIWithEncodedSlashes (internal/rabbittest).
[ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
# HAProxy: e2e's TestBehind* tests put a real load balancer in front of the
# gateway, in HTTP mode and in TCP mode with the PROXY protocol
# (internal/haproxytest).
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# Prometheus: e2e's TestMetrics* tests have a real Prometheus scrape the
# gateway's /metrics over TLS with a bearer token and query what it read
# (internal/promtest).
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
# PostgreSQL: store/postgres's tests (the storetest suite, migrations of
# nodes starting at once, the audit chain from several nodes),
# internal/cli's TestStoreCopyToPostgreSQL and e2e's
# TestTwoNodesOnPostgreSQL run a real server as the postgres account
# (internal/pgtest).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# wrk: e2e's TestReloadUnderLoad loads an app for 10 s while the
# configuration is reloaded every second (the benchmarks use it too).
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# npm (with Node.js): installs axe-core below, for e2e's TestAccessibility*
# tests (WCAG 2.1 A and AA rules run in Chromium on every page).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]} from Debian's packages"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	# The packages' system services (Apache on :80, RabbitMQ and epmd on
	# every interface, HAProxy, Prometheus on :9090) are not started: the tests start their own, on
	# loopback. invoke-rc.d and deb-systemd-invoke ask policy-rc.d.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -z "$policy" ] || $sudo rm -f "$policy"
fi

# axe-core, the accessibility rules the TestAccessibility* tests run in
# Chromium (injected through DevTools, never served by the gateway): a
# pinned version, installed once into a cache outside the repository.
axe_version=4.14.1
axe_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluis/npm"
if [ ! -s "$axe_dir/node_modules/axe-core/axe.min.js" ] ||
	! grep -q "\"version\": \"$axe_version\"" "$axe_dir/node_modules/axe-core/package.json"; then
	echo "test.sh: installing axe-core $axe_version with npm into $axe_dir"
	mkdir -p "$axe_dir"
	npm install --prefix "$axe_dir" --no-audit --no-fund --no-save --silent "axe-core@$axe_version" >/dev/null
fi
export SLUIS_AXE="$axe_dir/node_modules/axe-core/axe.min.js"

export SLUIS_REQUIRE_INTEGRATION=1
export SLUIS_ARTIFACTS="$PWD/artifacts"

echo "test.sh: static build without cgo"
CGO_ENABLED=0 go build -o /dev/null ./cmd/sluis
echo "test.sh: go vet"
go vet ./...
echo "test.sh: govulncheck against a local copy of the Go vulnerability database"
vulndb=$(mktemp -d)
trap 'rm -rf "$vulndb"' EXIT
go run ./tools/vulndb -out "$vulndb"
go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "file://$vulndb" ./...
echo "test.sh: go test (race detector on; fuzz targets run their seed corpora)"
go test -race -count=1 -timeout 30m ./...
