#!/usr/bin/env bash
# Runs the whole sluice test suite on a fresh Debian machine: installs the
# real SMTP peers the integration tests drive (swaks; smtp-source and
# smtp-sink from postfix; strace), then runs every Go test with the race
# detector. Usage: ./test.sh [extra go test args]
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v swaks >/dev/null || need+=(swaks)
command -v smtp-sink >/dev/null || need+=(postfix)
command -v strace >/dev/null || need+=(strace)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y --no-install-recommends "${need[@]}" ||
		{ $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
	# The postfix package starts its daemon; the tests need only its tools.
	$sudo postfix stop >/dev/null 2>&1 || true
fi

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed: $unformatted" >&2
	exit 1
fi
go test -race -count=1 -timeout 30m "$@" ./...
