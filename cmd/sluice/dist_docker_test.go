package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDockerfile checks the Dockerfile without a container runtime
// (there is none on the test machines): every file it copies from the
// build context exists, the config it installs is accepted and keeps its
// data in the image's volume, the ports it exposes are the ones that
// config listens on, it runs as a user other than root, and its
// HEALTHCHECK is `sluice status` against that config (issue 12 item 3).
func TestDockerfile(t *testing.T) {
	t.Parallel()
	var (
		copies  = map[string]string{} // dst -> src, from the build context
		stages  int
		user    string
		volumes []string
		exposed []string
		health  string
	)
	// Join continuation lines, then read instruction by instruction.
	text := strings.ReplaceAll(readFile(t, filepath.Join(repoRoot, "Dockerfile")), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		inst, rest, _ := strings.Cut(line, " ")
		args := strings.Fields(rest)
		switch strings.ToUpper(inst) {
		case "FROM":
			stages++
		case "COPY":
			if strings.HasPrefix(args[0], "--from=") {
				continue
			}
			for _, src := range args[:len(args)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
				copies[args[len(args)-1]] = src
			}
		case "USER":
			user = args[0]
		case "VOLUME":
			volumes = append(volumes, args...)
		case "EXPOSE":
			exposed = append(exposed, args...)
		case "HEALTHCHECK":
			health = rest
		}
	}
	if stages < 2 {
		t.Errorf("%d stages, want a build stage and a runtime stage", stages)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("USER %q: the container must not run as root", user)
	}
	src, ok := copies["/etc/sluice/sluice.toml"]
	if !ok {
		t.Fatalf("no config copied to /etc/sluice/sluice.toml (copies: %v)", copies)
	}
	cfg, err := loadConfig(filepath.Join(repoRoot, src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	if !slices.Contains(volumes, cfg.DataDir) {
		t.Errorf("data_dir %s of %s is not a VOLUME (%v): the queue would die with the container", cfg.DataDir, src, volumes)
	}
	for _, a := range []string{cfg.Listen.SMTP, cfg.Listen.HTTP} {
		_, port, err := net.SplitHostPort(a)
		if err != nil || !slices.Contains(exposed, port) {
			t.Errorf("listen address %q: port not in EXPOSE %v", a, exposed)
		}
	}
	if !strings.Contains(health, `CMD ["/usr/bin/sluice", "status", "--config", "/etc/sluice/sluice.toml"]`) {
		t.Errorf("HEALTHCHECK %q is not `sluice status` on the installed config", health)
	}
	if !slices.Contains(cfg.Access.Networks, "127.0.0.0/8") || len(cfg.Access.Networks) != 2 {
		t.Errorf("access.networks %v: the image must relay for the container itself only until configured", cfg.Access.Networks)
	}
}
