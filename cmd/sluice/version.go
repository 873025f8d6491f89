package main

import (
	"runtime/debug"
	"strings"
)

// The revision of a build that Go could not stamp: a git worktree (Go
// finds a repository only through a .git directory), a source tarball, or
// GOFLAGS=-buildvcs=false. build.sh, which builds the release binary,
// sets them from git:
//
//	go build -buildvcs=true -ldflags "-X main.vcsRevision=$(git rev-parse HEAD) -X main.vcsModified=true|false" ./cmd/sluice
//
// The build info's own stamp, when there is one, wins.
var (
	vcsRevision string
	vcsModified string // "true" when built from a tree with uncommitted changes
)

// buildVersion is what `sluice status` and the dashboard show, e.g.
// "v0.1.0 (rev 9d92694afe56, modified)".
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo() // nil when there is none
	return versionOf(bi, vcsRevision, vcsModified)
}

// versionOf is the module version and the VCS revision of bi (a
// short hash, and "modified" when the tree had uncommitted changes), or of
// the linker's stamp when bi has none. A module version "(devel)" (a
// build without VCS stamp) reads "devel"; "+dirty" (Go 1.24's mark of a
// modified tree on a pseudo-version) is said by "modified" instead.
func versionOf(bi *debug.BuildInfo, ldRevision, ldModified string) string {
	v, rev, modified := "", ldRevision, ldModified == "true"
	if bi != nil {
		v = strings.TrimSuffix(bi.Main.Version, "+dirty")
		set := map[string]string{}
		for _, s := range bi.Settings {
			set[s.Key] = s.Value
		}
		if r := set["vcs.revision"]; r != "" {
			rev, modified = r, set["vcs.modified"] == "true"
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if rev == "" {
		return v + " (revision unknown: built without VCS information)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		return v + " (rev " + rev + ", modified)"
	}
	return v + " (rev " + rev + ")"
}
