package main

import (
	"fmt"
	"io"
)

// runReload: `sluice reload`: the daemon reads its configuration file
// again and applies it, as on SIGHUP. It exits non-zero when the file is
// refused (the error names the file, the line and the key); the daemon
// then keeps running on the configuration it had.
func runReload(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("reload", "reload [--json]\n\nThe daemon reads its config file again and applies it, as on SIGHUP: access, limits,\nroutes and smarthost, policy, auth (DKIM keys), the TLS certificate and log.level.\nKeys that need a restart are listed and keep their running value.\nExit 0 when applied; 1 when the file is refused (the daemon keeps its configuration).", stderr)
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: sluice reload takes no arguments", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	res, err := c.Reload(ctx)
	if err != nil {
		return explainErr(c, err)
	}
	if cf.json {
		return printJSON(stdout, res)
	}
	renderReload(stdout, res)
	return nil
}
