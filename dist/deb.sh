#!/usr/bin/env bash
# Builds the Debian package of sluice: dist/deb.sh [OUT.deb]
#
#   VERSION     package version (default: from `git describe` of a v* tag,
#               else 0.0.0~gitYYYYMMDD.HASH)
#   ARCH        Debian architecture (default: `go env GOARCH`)
#   SLUICE_BIN  a binary already built for ARCH (default: built here by
#               build.sh, with CGO off so that it runs on any Debian of
#               that architecture)
#
# The packaging is dist/nfpm.yaml, run by the small nfpm program in
# dist/deb (a module of its own, so that nfpm stays out of the relay's
# dependencies). Needs Go and the Go module proxy (or a filled module
# cache), not dpkg. Check the result with dpkg-deb -I / -c.
set -euo pipefail
out=${1:-}
case $out in '' | /*) ;; *) out="$PWD/$out" ;; esac
cd "$(dirname "$0")/.."

export ARCH=${ARCH:-$(go env GOARCH)}
if [ -z "${VERSION:-}" ]; then
	if v=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.0-3-gabcdef: 3 commits after v1.2.0 -> 1.2.0+3.gabcdef
		VERSION=$(sed -E 's/^v//; s/-([0-9]+)-g/+\1.g/' <<<"$v")
	else
		VERSION="0.0.0~git$(date -u +%Y%m%d).$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
	fi
fi
export VERSION
[ -n "$out" ] || out="$PWD/sluice_${VERSION}_${ARCH}.deb"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "${SLUICE_BIN:-}" ]; then
	SLUICE_BIN="$tmp/sluice"
	CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" ./build.sh "$SLUICE_BIN" # stamped with its revision
fi
export SLUICE_BIN
(cd dist/deb && go build -o "$tmp/nfpm" .)
"$tmp/nfpm" -config dist/nfpm.yaml -o "$out"
