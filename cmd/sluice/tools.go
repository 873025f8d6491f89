package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"sluice/auth"
	"sluice/config"
	"sluice/dane"
	"sluice/internal/escape"
	"sluice/mtasts"
	"sluice/tlsrpt"
)

// runConfig: `sluice config check FILE`. It runs what `serve` runs
// before it opens the queue and binds its ports (config.Load, then
// preflight), so that a file it passes is one the daemon starts with.
func runConfig(args []string, stdout, stderr io.Writer) error {
	const use = "config check FILE"
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintf(stderr, "usage: sluice %s\n", use)
		return fmt.Errorf("%w: sluice %s", errUsage, use)
	}
	fs := newFlagSet("config check", use+`

Validate FILE as `+"`sluice serve --config FILE`"+` would: strict decoding (file, line and
key of every problem), then everything the daemon builds before it binds its
ports: TLS certificate, DKIM keys, admin token, inbound and outbound settings.
Exit 0 when the daemon would start with it, 1 when not, 2 on a usage error.`, stderr)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		// -h included: the usage was printed; a check that checked
		// nothing must not look like a pass to a script.
		return fmt.Errorf("%w: sluice %s", errUsage, use)
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: sluice %s", errUsage, use)
	}
	cfg, err := config.Load(pos[0])
	if err != nil {
		return err
	}
	if _, err := preflight(cfg, slog.New(slog.DiscardHandler)); err != nil {
		return inFile(pos[0], err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", pos[0])
	return nil
}

// inFile names file on every line of err (preflight joins independent
// problems, one per line).
func inFile(file string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = file + ": " + l
	}
	return errors.New(strings.Join(lines, "\n"))
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
	return doctorCmd{}.run(args, stdout, stderr)
}

// doctorCmd is `sluice doctor`. resolver replaces the daemon's (tests);
// nil asks the resolver the config names, as the daemon would.
type doctorCmd struct {
	resolver auth.Resolver
	dane     dane.Resolver      // with resolver: the DANE, MTA-STS and TLS-RPT checks' (AD bit trusted)
	stsDial  mtasts.DialContext // the MTA-STS policy fetch's dialer; nil = the network
}

// run prints the report, then fails (exit 1) when the report cannot be
// trusted: DNS lookups failed, or the domain does not exist. A script can
// then tell "nothing to fix" from "could not check".
func (d doctorCmd) run(args []string, stdout, stderr io.Writer) error {
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
	res, daneRes := d.resolver, d.dane
	if res == nil {
		r, err := newResolver(cfg)
		if err != nil {
			return err
		}
		defer r.Close()
		res, daneRes = r.Compat(), r
		if d.stsDial == nil {
			d.stsDial = resolvingDialer(r, cfg.Delivery.MTASTSPort)
		}
	}
	o := authOptions(cfg, newLogger(cfg.Log, stderr), res)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := auth.Doctor(ctx, o, fs.Arg(0))
	if err != nil {
		return err
	}
	// DANE (RFC 7672) as senders see the domain's MX hosts; known only
	// when the resolver's AD bit is trusted (delivery.resolver_dnssec).
	rep.AddDANE(dane.Doctor(ctx, daneRes, fs.Arg(0), cfg.Delivery.ResolverDNSSEC && daneRes != nil))
	// The domain's own MTA-STS policy and TLS-RPT record, as the
	// senders that honour them see them (RFC 8461, RFC 8460).
	if daneRes != nil {
		roots, _ := cfg.Delivery.RootCAs() // validated at load
		rep.AddMTASTS(mtasts.Doctor(ctx, daneRes, mtasts.NewHTTPClient(roots, d.stsDial, 20*time.Second), fs.Arg(0)))
		rep.AddTLSRPT(tlsrpt.Doctor(ctx, daneRes, fs.Arg(0)))
	}
	if *asJSON {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, escape.Lines(rep.Text())) // DNS records are remote text
	}
	return rep.Err()
}
