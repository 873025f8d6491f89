package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"sluice/admin"
	"sluice/config"
)

// defaultAdmin is where the daemon listens with the embedded defaults
// (data_dir "./sluice-data"), relative so that the message reads the
// way the operator would type it.
const defaultAdmin = "unix:./sluice-data/admin.sock"

// cliFlags are the flags every operator command takes.
type cliFlags struct {
	config, admin, tokenFile string
	json                     bool
}

func (c *cliFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file: the daemon is found at its listen.admin (and data_dir)")
	fs.StringVar(&c.admin, "admin", "", "admin address, unix:PATH or host:port (default "+defaultAdmin+")")
	fs.StringVar(&c.tokenFile, "token-file", "", "bearer token file, required by a TCP admin address (default: listen.admin_token_file of --config)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts instead of a table")
}

// client finds the daemon: --config FILE, then --admin ADDR, then the
// default socket (design §3).
func (c *cliFlags) client() (*admin.Client, error) {
	addr, tokenFile := c.admin, c.tokenFile
	if c.config != "" {
		cfg, err := config.Load(c.config)
		if err != nil {
			return nil, err
		}
		addr = cfg.AdminAddress()
		if tokenFile == "" {
			tokenFile = cfg.Listen.AdminTokenFile
		}
	}
	if addr == "" {
		addr = defaultAdmin
	}
	token := ""
	if tokenFile != "" && !strings.HasPrefix(addr, "unix:") {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return admin.NewClient(addr, token), nil
}

// explainErr turns "connection refused" into the sentence an operator
// needs.
func explainErr(c *admin.Client, err error) error {
	if errors.Is(err, admin.ErrNoDaemon) {
		return fmt.Errorf("no sluice daemon at %s — is `sluice serve` running?", strings.TrimPrefix(c.Addr(), "unix:"))
	}
	var ae *admin.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		return fmt.Errorf("the admin API at %s refused the bearer token: give --config FILE (its listen.admin_token_file) or --token-file FILE", c.Addr())
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments ("queue show ID --json"), which the flag
// package alone does not allow.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlagSet builds a flag set whose -h prints usage and the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sluice %s\n", usage)
		if hasFlags(fs) {
			fmt.Fprintln(stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseErr maps -h to a clean exit and every other flag error to usage.
func parseErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// errHelp: the user asked for help, which was printed; exit 0.
var errHelp = errors.New("help printed")

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// connect is the common head of every admin command: the daemon's client
// and a context bounding the call. The caller defers cancel.
func (c *cliFlags) connect() (*admin.Client, context.Context, context.CancelFunc, error) {
	cl, err := c.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := ctxTimeout()
	return cl, ctx, cancel, nil
}
