#!/usr/bin/env bash
# Builds the sluice binary stamped with its version, as `sluice status`
# and the dashboard show it: "v0.1.0 (rev 9d92694afe56, modified)".
# Usage: ./build.sh [OUTPUT]   (default ./sluice)
#
# -buildvcs=true overrides a GOFLAGS=-buildvcs=false in the environment;
# Go stamps the module version and revision from a clone. Where it cannot
# (a git worktree, whose .git is a file), the revision comes from git
# through the linker (main.vcsRevision, main.vcsModified: see
# cmd/sluice/version.go). Outside a checkout the version says the
# revision is unknown.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-sluice}
flags=(-buildvcs=true -trimpath)
if rev=$(git rev-parse HEAD 2>/dev/null); then
	modified=false
	if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
		modified=true
	fi
	flags+=(-ldflags "-X main.vcsRevision=$rev -X main.vcsModified=$modified")
fi
exec go build "${flags[@]}" -o "$out" ./cmd/sluice
