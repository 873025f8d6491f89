package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDebPackage builds the Debian package with dist/deb.sh (nfpm, from
// dist/nfpm.yaml) and reads it back with dpkg-deb: the control fields
// (-f, -I), the file list with modes and owners (-c), the conffile and
// the maintainer scripts (-I), and the extracted tree (-x): the binary
// runs and accepts the packaged config, the unit passes systemd-analyze
// (issue 12 item 3). The first run compiles nfpm (about 30 s on 2 CPUs);
// later runs take a few seconds.
func TestDebPackage(t *testing.T) {
	t.Parallel()
	dpkg := needTool(t, "dpkg-deb")
	bin := buildTool(t, "sluice/cmd/sluice")
	deb := filepath.Join(t.TempDir(), "sluice.deb")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "dist/deb.sh"), deb)
	cmd.Env = append(os.Environ(), "SLUICE_BIN="+bin, "VERSION=1.2.3~test", "ARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dist/deb.sh: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(dpkg, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// -f / -I: the control file.
	for field, want := range map[string]string{
		"Package":      "sluice",
		"Version":      "1.2.3~test",
		"Architecture": runtime.GOARCH,
		"Section":      "mail",
	} {
		if got := strings.TrimSpace(run("-f", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	info := run("-I", deb)
	for _, s := range []string{"conffiles", "postinst", "prerm", "postrm", "Maintainer: ", "Description: "} {
		if !strings.Contains(info, s) {
			t.Errorf("dpkg-deb -I has no %q:\n%s", s, info)
		}
	}
	if got := strings.TrimSpace(run("-I", deb, "conffiles")); got != "/etc/sluice/sluice.toml" {
		t.Errorf("conffiles: %q, want /etc/sluice/sluice.toml alone", got)
	}
	if got, want := run("-I", deb, "postinst"), readFile(t, filepath.Join(repoRoot, "dist/deb/scripts/postinst")); got != want {
		t.Errorf("postinst is not dist/deb/scripts/postinst:\n%s", got)
	}

	// -c: what is installed where, with which mode and owner.
	listed := map[string]string{} // path -> "mode owner"
	sc := bufio.NewScanner(strings.NewReader(run("-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: %q", sc.Text())
		}
		if n := len(f); n > 7 && f[n-2] == "->" {
			// A symbolic link: "path -> target".
			listed[strings.TrimPrefix(f[n-3], ".")] = f[0] + " " + f[1] + " -> " + f[n-1]
			continue
		}
		listed[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
	}
	for path, want := range map[string]string{
		"/usr/bin/sluice":                           "-rwxr-xr-x root/root",
		"/usr/lib/sluice/sendmail":                  "lrwxrwxrwx root/root -> /usr/bin/sluice",
		"/lib/systemd/system/sluice.service":        "-rw-r--r-- root/root",
		"/etc/sluice/sluice.toml":                   "-rw-r----- root/root", // postinst gives it group sluice
		"/etc/sluice/dkim/":                         "drwxr-x--- root/root",
		"/usr/share/doc/sluice/operations.md":       "-rw-r--r-- root/root",
		"/usr/share/doc/sluice/config.example.toml": "-rw-r--r-- root/root",
		"/usr/share/doc/sluice/examples/alerts.yml": "-rw-r--r-- root/root",
	} {
		if got := listed[path]; got != want {
			t.Errorf("dpkg-deb -c: %s is %q, want %q", path, got, want)
		}
	}

	// -x: the tree as dpkg would unpack it.
	x := t.TempDir()
	run("-x", deb, x)
	for dst, src := range map[string]string{
		"lib/systemd/system/sluice.service": "dist/systemd/sluice.service",
		"etc/sluice/sluice.toml":            "dist/sluice.toml",
	} {
		if readFile(t, filepath.Join(x, dst)) != readFile(t, filepath.Join(repoRoot, src)) {
			t.Errorf("/%s differs from %s", dst, src)
		}
	}
	out, err := exec.Command(filepath.Join(x, "usr/bin/sluice"), "config", "check", filepath.Join(x, "etc/sluice/sluice.toml")).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ": ok") {
		t.Errorf("the packaged binary does not accept the packaged config: %v\n%s", err, out)
	}
	checkUnitDirectives(t, filepath.Join(x, "lib/systemd/system/sluice.service"))
	verifyUnit(t, unitRoot(t, "", x))
}

// TestDebPostinst runs the package's postinst with stand-ins for the
// commands it calls (recording their arguments), as dpkg runs it on a
// first install: it creates the system user with adduser, or with
// groupadd and useradd where adduser is missing, leaves an existing
// user alone, and gives /etc/sluice to group sluice.
func TestDebPostinst(t *testing.T) {
	t.Parallel()
	postinst := filepath.Join(repoRoot, "dist/deb/scripts/postinst")
	for _, tc := range []struct {
		name      string
		stubs     []string
		userKnown bool
		want      []string
		wantNot   []string
	}{
		{"adduser", []string{"adduser"}, false,
			[]string{"adduser --system --group --home /var/lib/sluice --no-create-home --gecos sluice mail relay sluice"},
			[]string{"useradd"}},
		{"useradd", []string{"useradd", "groupadd"}, false,
			[]string{"groupadd --system sluice", "useradd --system --gid sluice --home-dir /var/lib/sluice --no-create-home --shell /usr/sbin/nologin --comment sluice mail relay sluice"},
			[]string{"adduser"}},
		{"existing user", []string{"adduser", "useradd", "groupadd"}, true,
			nil, []string{"adduser", "useradd", "groupadd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			stub := func(name, body string) {
				mustWrite(t, filepath.Join(dir, "bin", name), "#!/bin/sh\necho \""+name+" $*\" >> "+calls+"\n"+body, 0o755)
			}
			getent := "exit 2\n" // no such user or group
			if tc.userKnown {
				getent = "exit 0\n"
			}
			stub("getent", getent)
			stub("deb-systemd-helper", "case \"$*\" in *was-enabled*) exit 1 ;; esac\n") // a first install
			for _, s := range append(tc.stubs, "chown", "chmod", "install", "deb-systemd-invoke", "systemctl") {
				stub(s, "exit 0\n")
			}
			cmd := exec.Command("/bin/sh", postinst, "configure", "")
			cmd.Env = []string{"PATH=" + filepath.Join(dir, "bin")}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("postinst configure: %v\n%s", err, out)
			}
			got := readFile(t, calls)
			for _, w := range append(tc.want,
				"chown root:sluice /etc/sluice /etc/sluice/dkim /etc/sluice/sluice.toml",
				"chmod 0640 /etc/sluice/sluice.toml",
				"install -d -o sluice -g sluice -m 0700 /var/lib/sluice",
				"deb-systemd-helper update-state sluice.service") {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("no %q in the calls:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				for _, line := range strings.Split(got, "\n") {
					if strings.HasPrefix(line, w+" ") {
						t.Errorf("unexpected call %q", line)
					}
				}
			}
		})
	}
}
