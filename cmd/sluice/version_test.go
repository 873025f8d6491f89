package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	const rev = "9d92694afe563d7f9203c78ccba58f8ef83bde8a"
	stamp := func(version string, modified string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "sluice", Version: version}}
		if modified != "" {
			bi.Settings = []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
		}
		return bi
	}
	tests := []struct {
		name        string
		bi          *debug.BuildInfo
		ldRev, ldMo string
		want        string
	}{
		{"tagged release", stamp("v0.1.0", "false"), "", "", "v0.1.0 (rev 9d92694afe56)"},
		{"pseudo-version of a modified tree", stamp("v0.0.0-20261129231249-9d92694afe56+dirty", "true"), "", "", "v0.0.0-20261129231249-9d92694afe56 (rev 9d92694afe56, modified)"},
		{"stamp wins over the linker's", stamp("v0.1.0", "false"), "0123456789abcdef", "true", "v0.1.0 (rev 9d92694afe56)"},
		{"no stamp: the linker's revision", stamp("(devel)", ""), rev, "true", "devel (rev 9d92694afe56, modified)"},
		{"no stamp, clean tree", stamp("(devel)", ""), rev, "false", "devel (rev 9d92694afe56)"},
		{"nothing known", stamp("(devel)", ""), "", "", "devel (revision unknown: built without VCS information)"},
		{"no build info", nil, "", "", "devel (revision unknown: built without VCS information)"},
	}
	for _, tc := range tests {
		if got := versionOf(tc.bi, tc.ldRev, tc.ldMo); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
