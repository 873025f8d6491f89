// Command sluice is the outbound SMTP relay and its operator tool.
//
//	sluice serve [--config FILE]      run the relay (embedded defaults without --config)
//	sluice config check FILE          validate a config file
//	sluice dkim keygen ...            make a DKIM key and print its DNS record
//	sluice token new                  a new HTTP API token and its hash
//	sluice doctor DOMAIN              SPF, DKIM and DMARC posture of a sending domain
//	sluice lint FILE|-                content lint of a message, offline (exit 1: block findings)
//
// Exit codes: 0 ok, 1 error, 2 usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"sluice/internal/escape"
)

// errUsage marks a usage error: exit code 2.
var errUsage = errors.New("usage")

// command is one subcommand; run gets the arguments after its name.
type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the relay", runServe},
		{"config", "config check FILE: validate a config file", runConfig},
		{"dkim", "dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]", runDKIM},
		{"token", "token new: a new HTTP API token and the api_token_hash line for its [[access.user]]", runToken},
		{"doctor", "doctor [--config FILE] [--json] DOMAIN: SPF, DKIM, DMARC and PTR posture", runDoctor},
		{"queue", "queue list|show|summary|flush|hold|release|delete|bounce|backup|check|export|import|salvage|compact: inspect and act on the queue", cliCmd(func(a []string, o, e io.Writer) error { return runQueue(os.Stdin, a, o, e) })},
		{"domains", "domains [show D]: per-destination state, limits, 421s and the sender-wide alarm", cliCmd(runDomains)},
		{"limits", "limits set D [--max-concurrency N] [--rate R] | limits reset D: runtime limits", cliCmd(runLimits)},
		{"suppress", "suppress list|add ADDR|remove ADDR: the suppression list", cliCmd(runSuppress)},
		{"cluster", "cluster status: the nodes sharing this node's Redis, with heartbeat, version and queue size", cliCmd(runCluster)},
		{"status", "status: up, version, uptime, queue totals; exit 0 only when ready", cliCmd(runStatus)},
		{"events", "events [status] | tail [--after ID] | replay --since T [--sink URL]: delivery events and their sinks", cliCmd(runEvents)},
		{"reload", "reload: the daemon re-reads its config file (as SIGHUP); exit 1 if it is refused", cliCmd(runReload)},
		{"explain", "explain [--stage S] \"REPLY LINE\": class of a receiver's reply and sluice's reaction", cliCmd(runExplain)},
		{"lint", "lint [--json] [--bulk] [--disable IDS] FILE|-: content lint of a message, offline; exit 1 on block findings", cliCmd(func(a []string, o, e io.Writer) error { return runLint(os.Stdin, a, o, e) })},
		{"completion", "completion bash|zsh: shell completion script", runCompletion},
		{"sendmail", "sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]: sendmail(1) for PHP and cron, also as a `sendmail` link", nil},
	}
}

func main() {
	// Installed as a link named sendmail (/usr/lib/sluice/sendmail in
	// the package), the binary is sendmail(1), with its own flags and
	// sysexits.h exit codes.
	if name := filepath.Base(os.Args[0]); name == "sendmail" {
		os.Exit(runSendmail(name, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if c.run == nil { // sendmail: exit codes of its own
			return runSendmail("sluice sendmail", args[1:], os.Stdin, stdout, stderr)
		}
		return exitCode(c.name, c.run(args[1:], stdout, stderr), stderr)
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// exitCode reports a command's error on stderr and maps it to the exit
// code: 0 ok, 2 usage, 1 anything else.
func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "sluice %s: %s\n", name, escape.Lines(err.Error()))
		return 2
	default:
		// An error may quote the daemon, which may quote a client
		// or a remote server: escaped like every other output.
		fmt.Fprintf(stderr, "sluice %s: %s\n", name, escape.Lines(err.Error()))
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sluice COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}
