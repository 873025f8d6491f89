package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/internal/fakemx"
)

// The soak proof (issue 6, part 7): a steady rate for a long time,
// through a receiver that throttles one destination and one that
// greylists another. Resident memory, goroutines and open descriptors
// must stay flat, and there must be no error. It runs only when
// SLUICE_SOAK names a duration (test/soak.sh); SLUICE_SOAK_RATE sets
// the messages per second (default 300).

// soakSample is one reading of the relay process.
type soakSample struct {
	at                    time.Duration
	rssKB, fds, goroutine int
	anonKB, fileKB        int
}

func (s soakSample) String() string {
	return fmt.Sprintf("t=%v rss=%dkB (anon %dkB, file %dkB) goroutines=%d fds=%d", s.at.Round(time.Second), s.rssKB, s.anonKB, s.fileKB, s.goroutine, s.fds)
}

// goroutines reads go_goroutines from the relay's /metrics.
func goroutines(httpAddr string) int {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

func TestProofSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SLUICE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set SLUICE_SOAK=30m to run the soak (test/soak.sh)")
	}
	rate := 300
	if s := os.Getenv("SLUICE_SOAK_RATE"); s != "" {
		rate, _ = strconv.Atoi(s)
	}
	raiseNoFile(t, 8192)
	snk := startSink(t)
	throttle := startFakeMX(t, fakemx.Options{MaxSessions: 1, RatePerWindow: 20, Window: time.Second})
	grey := startFakeMX(t, fakemx.Options{Greylist: 5 * time.Second, GreylistText: "450 4.2.0 Greylisted, try again in %d seconds"})
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	// Finished messages keep their history for queue.retention (7 days by
	// default: 180 million records at this rate). The soak keeps 2
	// minutes, so that the file, and the mapped pages counted in RSS,
	// reach their steady size within the run; anonymous and file-backed
	// RSS are reported apart.
	cfg := writeConfig(t, dir, smtpAddr, routeTo("dest.test", snk.addr)+routeTo("throttle.test", throttle.Addr())+routeTo("grey.test", grey.Addr())+"\n[queue]\nretention = \"2m\"\n")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `http = ""`, fmt.Sprintf("http = %q", httpAddr), 1)), 0o644)
	r := startRelay(t, cfg, smtpAddr)
	pid := r.cmd.Process.Pid

	sample := func(at time.Duration) soakSample {
		rss, fds := procStat(pid)
		anon, file := procMem(pid)
		return soakSample{at: at, rssKB: rss, anonKB: anon, fileKB: file, fds: fds, goroutine: goroutines(httpAddr)}
	}

	// A ticker hands out send permits at the target rate; 32 clients,
	// each on its own reused connection, take them.
	permits := make(chan int, rate)
	var sent, errs atomic.Int64
	var ackMu sync.Mutex
	acked := map[string]bool{}
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *smtp.Client
			for n := range permits {
				if c == nil {
					var err error
					if c, err = smtp.Dial(smtpAddr); err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						c = nil
						continue
					}
					c.Hello("soak.test")
				}
				dom := "dest.test"
				// 5% to the throttled receiver (below its 20/s, but in
				// bursts and over more than its one session), 10% to
				// the greylisting one.
				switch {
				case n%20 == 0:
					dom = "throttle.test"
				case n%10 == 1:
					dom = "grey.test"
				}
				id := fmt.Sprintf("<soak-%d@proof.test>", n)
				msg := fmt.Sprintf("Subject: soak %d\r\nMessage-ID: %s\r\n\r\n%s\r\n", n, id, strings.Repeat("s", 1800))
				sent.Add(1)
				if err := c.SendMail("app@src.test", []string{fmt.Sprintf("user%d@%s", n%50, dom)}, strings.NewReader(msg)); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					c.Close()
					c = nil
					continue
				}
				ackMu.Lock()
				acked[id] = true
				ackMu.Unlock()
			}
			if c != nil {
				c.Quit()
			}
		}()
	}

	begin := time.Now()
	var samples []soakSample
	tick := time.NewTicker(10 * time.Millisecond)
	every := time.NewTicker(time.Minute)
	first := time.After(30 * time.Second) // the start reading, once warm
	n := 0
	credit := 0.0
	for time.Since(begin) < d {
		select {
		case <-tick.C:
			credit += float64(rate) / 100
			for credit >= 1 {
				select {
				case permits <- n:
					n++
				default: // the clients are behind: count it, do not queue
					errs.Add(1)
					firstErr.CompareAndSwap(nil, "injection fell behind the target rate")
				}
				credit--
			}
		case <-first:
			s := sample(time.Since(begin))
			samples = append(samples, s)
			t.Logf("soak: %s sent=%d errors=%d", s, sent.Load(), errs.Load())
		case <-every.C:
			s := sample(time.Since(begin))
			samples = append(samples, s)
			t.Logf("soak: %s sent=%d errors=%d", s, sent.Load(), errs.Load())
		}
	}
	tick.Stop()
	every.Stop()
	close(permits)
	wg.Wait()
	elapsed := time.Since(begin)

	delivered := func() map[string]int {
		got := snk.messageIDs(t)
		for _, mx := range []*fakemx.Server{throttle, grey} {
			for id, k := range mx.MessageIDs() {
				got[id] += k
			}
		}
		return got
	}
	lost := 0
	eventually(t, 5*time.Minute, "every acknowledged message delivered", func() bool {
		got := delivered()
		lost = 0
		for id := range acked {
			if got[id] == 0 {
				lost++
			}
		}
		return lost == 0
	})
	// Idle again: the final reading, after deliveries and reuse expired.
	time.Sleep(15 * time.Second)
	end := sample(elapsed)
	logErrors := strings.Count(relayLog(cfg), "level=ERROR")
	rep := fmt.Sprintf("soak: duration=%v rate=%d/s sent=%d acked=%d errors=%d log_errors=%d lost=%d throttle_421s=%d greylist_replies=%d\n",
		elapsed.Round(time.Second), rate, sent.Load(), len(acked), errs.Load(), logErrors, lost,
		throttle.Stats().SessionRefusals+throttle.Stats().RateRefusals, grey.Stats().GreylistReplies)
	for _, s := range samples {
		rep += "  " + s.String() + "\n"
	}
	rep += "  end (idle) " + end.String() + "\n"
	t.Log(rep)
	if out := os.Getenv("SLUICE_PROOF_REPORT"); out != "" {
		os.WriteFile(out, []byte(rep), 0o644)
	}
	if errs.Load() > 0 {
		t.Errorf("%d errors, first: %v", errs.Load(), firstErr.Load())
	}
	if logErrors > 0 {
		t.Errorf("%d ERROR lines in the relay log (%s)", logErrors, filepath.Join(dir, "sluice.log"))
	}
	if len(samples) > 0 {
		first := samples[0]
		if end.goroutine > first.goroutine+20 || end.fds > first.fds+20 || end.rssKB > 2*first.rssKB+32<<10 {
			t.Errorf("not flat: first %s, end %s", first, end)
		}
	}
}
