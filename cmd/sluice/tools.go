package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"sluice/auth"
	"sluice/config"
)

// runConfig: `sluice config check FILE`.
func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return fmt.Errorf("%w: sluice config check FILE", errUsage)
	}
	if _, err := config.Load(args[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	return nil
}

// runDKIM: `sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]`.
func runDKIM(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "keygen" {
		return fmt.Errorf("%w: sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]", errUsage)
	}
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	domain := fs.String("domain", "", "signing domain (d=)")
	selector := fs.String("selector", "", "selector (s=)")
	typ := fs.String("type", "rsa", "key type: rsa (2048 bits) or ed25519")
	out := fs.String("out", "", "key file to write (default: SELECTOR._domainkey.DOMAIN.pem), mode 0600")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *domain == "" || *selector == "" {
		return fmt.Errorf("%w: --domain and --selector are required", errUsage)
	}
	path := *out
	if path == "" {
		path = fmt.Sprintf("%s._domainkey.%s.pem", *selector, *domain)
	}
	name, value, err := auth.Keygen(*domain, *selector, *typ, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (mode 0600)\n\npublish this TXT record:\n%s. IN TXT %q\n\nthen add to the config:\n[[auth.dkim]]\ndomain = %q\nselector = %q\nkey_file = %q\n", path, name, value, *domain, *selector, path)
	return nil
}

// runDoctor: `sluice doctor [--config FILE] [--json] DOMAIN`.
func runDoctor(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (outbound IPs and DKIM keys)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: sluice doctor [--config FILE] [--json] DOMAIN", errUsage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	o := authOptions(cfg, newLogger(cfg.Log, stderr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := auth.Doctor(ctx, o, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprint(stdout, rep.Text())
	return nil
}
