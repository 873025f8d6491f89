#!/bin/sh
# fuzz.sh [MINUTES]: runs every fuzz target of the proof suite for MINUTES
# each (default 5), one after the other. New crashers land in the
# package's testdata/fuzz/<Target>/ directory: commit them with the fix.
# By hand only, not in CI.
set -eu
cd "$(dirname "$0")/.."
min=${1:-5}
targets="
policy FuzzClassify
admin FuzzParseReplyLine
relay/outbound FuzzReadReply
relay/inbound FuzzParseAddress
relay/inbound FuzzWire
relay/inbound FuzzEnvelopeCommands
config FuzzParse
config FuzzValues
dsn FuzzBuild
auth FuzzParseFrom
queue FuzzDecodeRecords
internal/fakemx FuzzReadData
resolver FuzzParseReply
resolver FuzzResolvConf
"
echo "$targets" | while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "== $pkg $target (${min}m)"
	go test "./$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "${min}m" -parallel "${PARALLEL:-2}" 2>&1 | tail -3
done
