package main

import (
	"fmt"
	"net/smtp"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// TestProofBackupWhileMailFlows (issue 12 item 5): `sluice queue backup
// FILE` takes consistent copies of the queue of a running daemon while
// mail is submitted and delivered; the daemon keeps accepting and
// delivering throughout; each copy passes `queue check --file FILE`,
// `queue export --file FILE` reads it, and a daemon started on the copy
// delivers the mail the copy holds (spooled bodies whole), each message
// once.
func TestProofBackupWhileMailFlows(t *testing.T) {
	mx := startFakeMX(t, fakemx.Options{})
	heldAt := freeAddr(t) // nothing listens there while the daemon runs
	dir, smtpAddr := t.TempDir(), freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, routeTo("dest.test", mx.Addr())+routeTo("held.test", heldAt))
	startRelay(t, cfg, smtpAddr)

	// Mail that stays queued: 12 messages, 3 with spooled bodies.
	const held, bigSize = 12, 200 << 10
	for i := range held {
		size := 512
		if i%4 == 0 {
			size = bigSize
		}
		if got := submitOnce(t, smtpAddr, fmt.Sprintf("user%d@held.test", i), fmt.Sprintf("held-%02d@proof.test", i), size); !strings.HasPrefix(got, "250") {
			t.Fatalf("submission %d: %q", i, got)
		}
	}

	// Mail that flows while the backups run.
	var (
		sent atomic.Int64
		stop = make(chan struct{})
		wg   sync.WaitGroup
		errs = make(chan error, 1)
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprintf("Subject: flow\r\nMessage-ID: <flow-%d@proof.test>\r\n\r\nflowing\r\n", i)
			if err := smtp.SendMail(smtpAddr, nil, "app@src.test", []string{"user@dest.test"}, []byte(msg)); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			sent.Add(1)
		}
	}()
	eventually(t, 30*time.Second, "mail flowing", func() bool { return mx.Stats().Delivered >= 5 })

	backupDir := t.TempDir()
	file := filepath.Join(backupDir, "data", "queue.db")
	for i := range 3 {
		before := sent.Load()
		out, code := cli(t, "queue", "backup", file, "--config", cfg)
		if code != 0 || !strings.Contains(out, "checked: ok") || !strings.Contains(out, "3 bodies") {
			t.Fatalf("backup %d: exit %d\n%s", i, code, out)
		}
		t.Logf("backup %d: %s(%d messages submitted meanwhile)", i, out, sent.Load()-before)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a submission failed while backups ran: %v", err)
	default:
	}
	eventually(t, 60*time.Second, "every flowing message delivered", func() bool { return mx.Stats().Delivered >= int(sent.Load()) })

	if out, code := cli(t, "queue", "check", "--file", file); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("check of the backup: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "queue", "export", "--file", file, "--output", filepath.Join(t.TempDir(), "q.jsonl")); code != 0 {
		t.Fatalf("export of the backup: exit %d\n%s", code, out)
	}
	// Into the daemon's own data dir: refused.
	if out, code := cli(t, "queue", "backup", filepath.Join(dir, "data", "copy.db"), "--config", cfg); code == 0 || !strings.Contains(out, "data_dir") {
		t.Errorf("backup into the data dir: exit %d\n%s", code, out)
	}

	// A daemon on the copy delivers what it holds, once each.
	mx2 := startFakeMX(t, fakemx.Options{KeepBodies: true})
	smtp2 := freeAddr(t)
	cfg2 := writeConfig(t, backupDir, smtp2, routeTo("dest.test", mx.Addr())+routeTo("held.test", mx2.Addr()))
	startRelay(t, cfg2, smtp2)
	eventually(t, 60*time.Second, "the held mail from the copy", func() bool { return len(mx2.MessageIDs()) == held })
	for id, c := range mx2.MessageIDs() {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	bigs := 0
	for _, b := range mx2.Received() {
		if len(b) >= bigSize {
			bigs++
		}
	}
	if bigs != 3 {
		t.Errorf("%d spooled bodies arrived whole, want 3", bigs)
	}
}
