#!/bin/sh
# soak.sh [DURATION] [RATE]: the soak proof of docs/reliability.md.
# DURATION (default 30m) at RATE msg/s (default 300) through smtp-sink, a
# fake MX that throttles throttle.test and one that greylists grey.test.
# Samples RSS, goroutines and open descriptors every minute; fails on any
# error, any lost message, or growth.
set -eu
cd "$(dirname "$0")/.."
d=${1:-30m}
rate=${2:-300}
report=${REPORT:-test/last-soak.txt}
SLUICE_SOAK=$d SLUICE_SOAK_RATE=$rate SLUICE_PROOF_REPORT=$PWD/$report \
	go test ./cmd/sluice -run '^TestProofSoak$' -count=1 -timeout 3h -v | grep -E 'soak|^(ok|FAIL|---)'
echo "date: $(date -u +%Y-%m-%d)"
cat "$report"
