// Command deb builds sluice's Debian package with nfpm
// (github.com/goreleaser/nfpm/v2) from dist/nfpm.yaml. It is a module of
// its own so that nfpm and what it pulls in (go-git, openpgp, ...) stay
// out of the relay's module graph: `go build ./cmd/sluice` never sees
// them. dist/deb.sh runs it; see docs/operations.md, "Install".
//
//	go run . -config ../nfpm.yaml -o sluice.deb   (from dist/deb)
//
// nfpm.yaml names its files relative to the working directory and takes
// ${SLUICE_BIN}, ${VERSION} and ${ARCH} from the environment.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
)

func main() {
	config := flag.String("config", "dist/nfpm.yaml", "nfpm configuration")
	out := flag.String("o", "", "the .deb to write (default: Debian's conventional name in the current directory)")
	flag.Parse()
	if err := build(*config, *out); err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
}

func build(configPath, out string) error {
	for _, v := range []string{"SLUICE_BIN", "VERSION", "ARCH"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("$%s is not set (dist/deb.sh sets it)", v)
		}
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(configPath, os.Getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info) // Package validates and prepares the contents
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if out == "" {
		out = pkg.ConventionalFileName(info)
	}
	info.Target = out
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(out)
		return err
	}
	fmt.Println(out)
	return nil
}
