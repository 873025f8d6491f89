// Command genqueue writes a synthetic `sluice queue export` stream of
// deferred messages on stdout (internal/queuegen), for bench/scale.sh to
// build a large backlog offline:
//
//	genqueue -n 100000 -first 0 -to user@dest.test -due-after 1m -due 5m |
//	    sluice queue import --config sluice.toml
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"sluice/internal/queuegen"
)

func main() {
	var o queuegen.Options
	flag.IntVar(&o.N, "n", 10000, "messages")
	flag.IntVar(&o.First, "first", 0, "number of the first message (streams into one queue must not overlap)")
	flag.IntVar(&o.Size, "size", 2048, "body size in bytes, headers included")
	flag.StringVar(&o.To, "to", "user@dest.test", "recipient; a %d is replaced by the message number (modulo -wrap)")
	flag.IntVar(&o.Wrap, "wrap", 0, "the number in -to wraps after this many (0 = never)")
	flag.StringVar(&o.From, "from", "bench@sender.test", "envelope sender")
	flag.DurationVar(&o.Spread, "spread", 48*time.Hour, "received times are spread over this long before now")
	flag.DurationVar(&o.DueAfter, "due-after", 0, "every recipient is due at least this long from now")
	flag.DurationVar(&o.Due, "due", 0, "next attempts are spread over this window after -due-after (both 0: due now)")
	flag.StringVar(&o.LastReply, "last-reply", "421 4.3.2 Service not available, try again later", "reply of the one failed attempt (\"\" = never tried)")
	flag.Parse()
	o.Now = time.Now()
	if err := queuegen.Write(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "genqueue:", err)
		os.Exit(1)
	}
}
