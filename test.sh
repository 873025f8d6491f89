#!/usr/bin/env bash
# Runs the whole sluice test suite on a fresh Debian machine: installs the
# real peers the integration tests drive, by package name, checks that each
# one works the way the tests need it, then runs go vet, gofmt and every Go
# test with the race detector. Usage: ./test.sh [extra go test args]
#
# Packages are named one by one rather than trusting "recommends": swaks
# without libnet-ssleay-perl and libio-socket-ssl-perl has no STARTTLS, and
# without libauthen-sasl-perl no AUTH, which once broke the suite on a
# fresh machine while apt reported success.
set -euo pipefail
cd "$(dirname "$0")"

die() {
	echo "test.sh: $*" >&2
	exit 1
}

# package -> a command that succeeds once it is usable
declare -A probe=(
	[swaks]="command -v swaks"
	[libnet-ssleay-perl]="perl -MNet::SSLeay -e1"
	[libio-socket-ssl-perl]="perl -MIO::Socket::SSL -e1"
	[libauthen-sasl-perl]="perl -MAuthen::SASL -e1"
	[postfix]="command -v smtp-sink && command -v smtp-source"
	[strace]="command -v strace"
	[chromium]="command -v chromium"
	[redis-server]="command -v redis-server"
	[curl]="command -v curl"
	[python3-dkim]="/usr/bin/python3 -c 'import dkim'"
	[libmail-dkim-perl]="perl -MMail::DKIM::Verifier -MNet::DNS -e1"
	# systemd-analyze verify and security check dist/systemd/sluice.service
	# and the unit of the .deb; dpkg-deb reads the .deb. Installing systemd
	# in a container starts nothing.
	[systemd]="command -v systemd-analyze"
	[dpkg]="command -v dpkg-deb"
	[php-cli]="command -v php"
	# lint/spamassassin_test.go cross-checks the content lint against
	# SpamAssassin 4.0's local rules (spamassassin -L -t).
	[spamassassin]="command -v spamassassin"
)
need=()
for pkg in "${!probe[@]}"; do
	bash -c "${probe[$pkg]}" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get to install them"
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "missing ${need[*]}: run as root or install sudo"
		sudo="sudo"
	fi
	echo "test.sh: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y -q "${need[@]}" >/dev/null ||
		{ $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${need[@]}" >/dev/null; } ||
		die "apt-get install ${need[*]} failed"
	# The postfix and redis packages start their daemons; the tests need
	# only the programs and start their own servers on loopback.
	$sudo postfix stop >/dev/null 2>&1 || true
	$sudo systemctl stop redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
fi

# Check each prerequisite up front, with one clear line, instead of a test
# failing deep in the run.
command -v go >/dev/null || die "go is not on PATH (Go 1.26 at /usr/local/go/bin)"
for pkg in "${!probe[@]}"; do
	bash -c "${probe[$pkg]}" >/dev/null 2>&1 || die "prerequisite $pkg is still missing after install (check: ${probe[$pkg]})"
done
support=$(swaks --support 2>&1 || true)
grep -q '^=== TLS supported' <<<"$support" || die "swaks has no TLS support (needs libnet-ssleay-perl and libio-socket-ssl-perl)"
grep -q '^=== Basic AUTH supported' <<<"$support" || die "swaks has no AUTH support (needs libauthen-sasl-perl)"

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	die "gofmt needed: $unformatted"
fi
# Under test.sh a missing peer fails a test instead of skipping it.
export SLUICE_TEST_REQUIRE_PEERS=1
go test -race -count=1 -timeout 30m "$@" ./...
