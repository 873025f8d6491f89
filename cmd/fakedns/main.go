// Command fakedns is a DNS server for benches: it answers for any mail
// domain under a suffix, after a delay, on UDP and TCP (internal/dnstest).
// A domain D under the suffix has "MX 10 mx.D" and mx.D has the address
// -a; other names under the suffix have no records of the type asked
// (NODATA), and names outside it do not exist (NXDOMAIN). It prints its
// address on stdout when ready and serves until SIGTERM/SIGINT, then
// prints its counters on stderr.
//
// Example: domains d1.many.test, d2.many.test, ... all delivered to
// 127.0.0.1 (the port is sluice's delivery.port), each answer 20 ms late:
//
//	fakedns -addr 127.0.0.1:5353 -suffix many.test -delay 20ms -a 127.0.0.1
//
// and in sluice.toml: [delivery] resolver = "127.0.0.1:5353".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"sluice/internal/dnstest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(os.Stderr, "fakedns:", err)
		}
		os.Exit(2)
	}
}

// run parses args, serves until ctx ends, and reports.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakedns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address, UDP and TCP")
	port := fs.Int("port", -1, "listen on 127.0.0.1:PORT (instead of -addr)")
	suffix := fs.String("suffix", "test", "answer for mail domains under this suffix")
	a := fs.String("a", "127.0.0.1", "address of every MX host (IPv6: answered as AAAA)")
	delay := fs.Duration("delay", 0, "wait this long before each reply")
	ttl := fs.Uint("ttl", 300, "TTL of every record and negative answer (seconds)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *port >= 0 {
		*addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))
	}
	ip, err := netip.ParseAddr(*a)
	if err != nil {
		return fmt.Errorf("-a: %w", err)
	}
	if *ttl > 1<<31-1 {
		return fmt.Errorf("-ttl %d: too large", *ttl)
	}
	s, err := dnstest.Start(dnstest.Options{
		Addr:     *addr,
		Answerer: dnstest.Suffix{Suffix: *suffix, Addr: ip.Unmap(), TTL: uint32(*ttl)},
		Delay:    *delay,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintln(stdout, s.Addr())
	start := time.Now()
	<-ctx.Done()
	st := s.Stats()
	fmt.Fprintf(stderr, "fakedns: %d queries (%d UDP, %d TCP) in %s, at most %d at once\n",
		st.Queries, st.UDP, st.TCP, time.Since(start).Round(time.Millisecond), st.MaxInFlight)
	return nil
}
