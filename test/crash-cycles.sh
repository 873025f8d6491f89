#!/bin/sh
# crash-cycles.sh [CYCLES]: the long crash-safety proof of docs/reliability.md.
# Injects into sluice while it delivers to smtp-sink and to a throttling
# fake MX, kill -9s it at a random moment, checks the queue file with
# bbolt's tx.Check, restarts, and repeats; then counts acknowledged,
# delivered, lost (must be 0) and duplicate messages.
# Needs smtp-sink (Debian postfix). Prints the figures on the last line.
set -eu
cd "$(dirname "$0")/.."
cycles=${1:-20}
report=${REPORT:-test/last-crash.txt}
SLUICE_CRASH_CYCLES=$cycles SLUICE_PROOF_REPORT=$PWD/$report \
	go test ./cmd/sluice -run '^TestProofCrashCycles$' -count=1 -timeout 60m -v | grep -E 'cycle|crash proof|^(ok|FAIL|---)'
echo "$(date -u +%Y-%m-%d) $(cat "$report")"
