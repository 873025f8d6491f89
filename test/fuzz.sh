#!/bin/sh
# fuzz.sh [MINUTES]: runs every fuzz target of the module for MINUTES each
# (default 5), one after the other. The targets are found in the
# *_test.go files (a list kept by hand went stale), so a new Fuzz function
# is fuzzed without editing this script. New crashers land in the
# package's testdata/fuzz/<Target>/ directory: commit them with the fix.
# By hand only, not in CI (every seed corpus runs in ./test.sh as a test).
set -eu
cd "$(dirname "$0")/.."
min=${1:-5}
grep -r --include='*_test.go' -H -o '^func Fuzz[A-Za-z0-9_]*' . |
	sed 's|^\./\(.*\)/[^/]*_test\.go:func \(Fuzz.*\)$|\1 \2|' | sort -u |
	while read -r pkg target; do
		echo "== $pkg $target (${min}m)"
		go test "./$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "${min}m" -parallel "${PARALLEL:-2}" 2>&1 | tail -3
	done
