package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The storage-fault proofs (issue 6, part 2): a full disk, a disk below
// the free-space reserve, and failing fsyncs. The promise is the one of
// RFC 5321 §6.1: a 250 at end of DATA means the mail is stored; when it
// cannot be, the client gets a temporary refusal (452 4.3.1 or 451 4.3.0,
// RFC 3463 §3.4) and keeps the mail.

// submitOnce runs one transaction and returns the reply that ended it
// (the first non-2xx/3xx reply, or the final reply to the body).
func submitOnce(t *testing.T, smtp, to, msgID string, size int) string {
	t.Helper()
	rc, code, text := dialSMTP(t, smtp, "")
	if code != 220 {
		return text
	}
	defer rc.c.Close()
	for _, c := range []string{"EHLO client.test", "MAIL FROM:<app@src.test>", "RCPT TO:<" + to + ">"} {
		if code, text := rc.cmd(c); code != 250 {
			return text
		}
	}
	if code, text := rc.cmd("DATA"); code != 354 {
		return text
	}
	body := fmt.Sprintf("Subject: storage\r\nMessage-ID: <%s>\r\n\r\n", msgID) + strings.Repeat(strings.Repeat("z", 70)+"\r\n", size/72+1)
	rc.send(body)
	_, text = rc.cmd(".")
	rc.cmd("QUIT")
	return text
}

// fillDisk writes a filler file into dir until fewer than leave bytes
// are free, or the disk is full when leave is 0.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("filler-%d", time.Now().UnixNano()))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * st.Bsize
		if leave > 0 && free <= leave {
			return p
		}
		n := int64(len(chunk))
		if leave > 0 {
			n = min(n, free-leave+4096)
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatal(err)
		}
	}
}

func TestProofTmpfsFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dataDir).Run() })

	snk := startSink(t)
	laterA, laterB := freeAddr(t), freeAddr(t) // next hops that are down for now
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr)+routeTo("a.test", laterA)+routeTo("b.test", laterB)+
		"\n[queue]\nmin_free_space = \"4MB\"\n")
	startRelay(t, cfg, smtp)

	// Mail for two destinations that are down: it must leave later,
	// while the disk is short.
	for i := range 10 {
		for _, d := range []string{"a", "b"} {
			if r := submitOnce(t, smtp, "user@"+d+".test", fmt.Sprintf("queued-%s-%d@proof.test", d, i), 4096); !strings.HasPrefix(r, "250") {
				t.Fatalf("before the fill: %q", r)
			}
		}
	}

	okReply := func(r string) bool {
		return strings.HasPrefix(r, "452 4.3.1") || strings.HasPrefix(r, "451 4.3.0")
	}
	acked := map[string]bool{}

	// Below the reserve but not full: new mail is refused, queued mail
	// still completes (attempts and completions commit).
	filler1 := fillDisk(t, dataDir, 2<<20)
	for i := range 10 {
		id := fmt.Sprintf("reserve-%d@proof.test", i)
		r := submitOnce(t, smtp, "user@dest.test", id, 8192)
		if strings.HasPrefix(r, "250") {
			t.Errorf("below the reserve: 250 for %s", id)
			acked["<"+id+">"] = true
		} else if !strings.HasPrefix(r, "452 4.3.1") {
			t.Errorf("below the reserve: %q, want 452 4.3.1", r)
		}
	}
	sinkA := startSinkAt(t, laterA)
	eventually(t, 20*time.Second, "queued mail to flow out below the reserve", func() bool {
		return len(sinkA.messageIDs(t)) == 10
	})

	// Completely full: never a 250 that was not stored, never a 5xx.
	filler2 := fillDisk(t, dataDir, 0)
	for i := range 20 {
		id := fmt.Sprintf("full-%d@proof.test", i)
		r := submitOnce(t, smtp, "user@dest.test", id, 64<<10)
		if strings.HasPrefix(r, "250") {
			acked["<"+id+">"] = true
			continue
		}
		if !okReply(r) {
			t.Errorf("disk full: %q, want 452 4.3.1 or 451 4.3.0", r)
		}
	}
	if len(acked) > 0 {
		t.Errorf("%d messages got 250 on a full disk", len(acked))
	}
	sinkB := startSinkAt(t, laterB)
	eventually(t, 20*time.Second, "queued mail to flow out on a full disk", func() bool {
		return len(sinkB.messageIDs(t)) == 10
	})

	// Space comes back: so does the relay, without a restart (within a
	// second: MAIL answers from a free-space reading taken every second).
	os.Remove(filler2)
	os.Remove(filler1)
	eventually(t, 5*time.Second, "MAIL to be taken again", func() bool {
		return strings.HasPrefix(mailProbe(t, smtp, ""), "250")
	})
	for i := range 5 {
		id := fmt.Sprintf("after-%d@proof.test", i)
		if r := submitOnce(t, smtp, "user@dest.test", id, 4096); !strings.HasPrefix(r, "250") {
			t.Fatalf("after freeing space: %q", r)
		}
		acked["<"+id+">"] = true
	}
	eventually(t, 20*time.Second, "every acknowledged message at the sink", func() bool {
		got := snk.messageIDs(t)
		for id := range acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
}

// TestProofFsyncFailure: with every fsync of the queue file failing
// (strace fault injection, filtered by path so that the count does not
// depend on threads), every submission gets 451, never 250, never 5xx.
func TestProofFsyncFailure(t *testing.T) {
	strace := needTool(t, "strace")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	smtp := freeAddr(t)
	snk := startSink(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
	// Create the queue file first, so that the faulty run opens an
	// existing file.
	r := startRelay(t, cfg, smtp)
	if got := submitOnce(t, smtp, "user@dest.test", "before@proof.test", 1024); !strings.HasPrefix(got, "250") {
		t.Fatalf("healthy relay: %q", got)
	}
	r.stop(t)

	db := filepath.Join(dataDir, "queue.db")
	if out, err := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "inject=fdatasync:error=EIO", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot inject here: %v: %s", err, out)
	}
	// Start-up fsyncs the file too (and rightly refuses to run when that
	// fails), so attach strace to the running relay: from then on every
	// fsync of the queue file fails, whatever the thread.
	r = startRelay(t, cfg, smtp)
	errf := filepath.Join(dir, "strace.err")
	ef, err := os.Create(errf)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	st := exec.Command(strace, "-f", "-p", fmt.Sprint(r.cmd.Process.Pid), "-o", "/dev/null", "-P", db,
		"-e", "trace=fdatasync,fsync", "-e", "inject=fdatasync,fsync:error=EIO")
	st.Stderr = ef
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	stDone := make(chan struct{})
	go func() { st.Wait(); close(stDone) }()
	detach := func() {
		st.Process.Signal(syscall.SIGTERM) // strace detaches on SIGTERM
		<-stDone
	}
	defer detach()
	eventually(t, 10*time.Second, "strace to attach", func() bool {
		b, _ := os.ReadFile(errf)
		return strings.Contains(string(b), "attached")
	})
	for i := range 10 {
		got := submitOnce(t, smtp, "user@dest.test", fmt.Sprintf("eio-%d@proof.test", i), 2048)
		if !strings.HasPrefix(got, "451") {
			t.Errorf("fsync failing: %q, want 451", got)
		}
	}
	detach()
	// The disk is healthy again: so is the relay, without a restart.
	eventually(t, 15*time.Second, "a 250 after the fault", func() bool {
		return strings.HasPrefix(submitOnce(t, smtp, "user@dest.test", "after-eio@proof.test", 1024), "250")
	})
	eventually(t, 15*time.Second, "delivery after the fault", func() bool {
		return snk.messageIDs(t)["<after-eio@proof.test>"] >= 1
	})
	for id := range snk.messageIDs(t) {
		if strings.HasPrefix(id, "<eio-") {
			t.Errorf("%s was refused with 451 but delivered", id)
		}
	}
}

// runServeFails runs `sluice serve` with args, expects it to exit
// non-zero within 15 s, and returns its combined output.
func runServeFails(t *testing.T, args ...string) string {
	t.Helper()
	bin := buildTool(t, "sluice/cmd/sluice")
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("serve exited with %v, want a non-zero exit; output:\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("serve still running after 15s; output:\n%s", out.String())
	}
	return out.String()
}

// TestProofReadOnlyDataDir (issue 9 item 10): a read-only data dir is
// named as such, never as "no space". At start-up serve exits non-zero
// naming the cause; at run time (EROFS injected into the queue file's
// writes) the client gets 451 4.3.0, not 452 4.3.1, and the log names
// the real error.
func TestProofReadOnlyDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only tmpfs")
	}
	t.Run("start-up", func(t *testing.T) {
		dir := t.TempDir()
		dataDir := filepath.Join(dir, "data")
		os.MkdirAll(dataDir, 0o700)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dataDir).CombinedOutput(); err != nil {
			t.Skipf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dataDir).Run() })
		cfg := writeConfig(t, dir, freeAddr(t), "")
		out := runServeFails(t, "--config", cfg)
		if !strings.Contains(out, "read-only file system") || strings.Contains(out, "no space") {
			t.Errorf("serve on a read-only data dir said:\n%s\nwant the real cause (read-only file system), not \"no space\"", out)
		}
	})
	t.Run("run time", func(t *testing.T) {
		strace := needTool(t, "strace")
		if out, err := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "inject=pwrite64:error=EROFS", "true").CombinedOutput(); err != nil {
			t.Skipf("strace cannot inject here: %v: %s", err, out)
		}
		dir := t.TempDir()
		smtp := freeAddr(t)
		snk := startSink(t)
		cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
		r := startRelay(t, cfg, smtp)
		db := filepath.Join(dir, "data", "queue.db")
		detach := straceAttach(t, strace, r, "-P", db, "-e", "trace=pwrite64", "-e", "inject=pwrite64:error=EROFS")
		for i := range 3 {
			got := submitOnce(t, smtp, "user@dest.test", fmt.Sprintf("erofs-%d@proof.test", i), 2048)
			if !strings.HasPrefix(got, "451 4.3.0") {
				t.Errorf("queue file read-only: %q, want 451 4.3.0", got)
			}
		}
		detach()
		log := relayLog(cfg)
		if !strings.Contains(log, "read-only file system") {
			t.Errorf("the log does not name the cause (read-only file system):\n%s", log)
		}
		if strings.Contains(log, "no space") {
			t.Errorf("the log calls a read-only file \"no space\":\n%s", log)
		}
		eventually(t, 15*time.Second, "a 250 once the file is writable again", func() bool {
			return strings.HasPrefix(submitOnce(t, smtp, "user@dest.test", "after-erofs@proof.test", 1024), "250")
		})
	})
}

// straceAttach attaches strace to the relay with args (a fault to
// inject), waits until it is attached, and returns a func that detaches
// it (idempotent; also run at cleanup).
func straceAttach(t *testing.T, strace string, r *relayProc, args ...string) (detach func()) {
	t.Helper()
	errf := filepath.Join(t.TempDir(), "strace.err")
	ef, err := os.Create(errf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ef.Close() })
	st := exec.Command(strace, append([]string{"-f", "-p", fmt.Sprint(r.cmd.Process.Pid), "-o", "/dev/null"}, args...)...)
	st.Stderr = ef
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	stDone := make(chan struct{})
	go func() { st.Wait(); close(stDone) }()
	var once sync.Once
	detach = func() {
		once.Do(func() {
			st.Process.Signal(syscall.SIGTERM) // strace detaches on SIGTERM
			<-stDone
		})
	}
	t.Cleanup(detach)
	eventually(t, 10*time.Second, "strace to attach", func() bool {
		b, _ := os.ReadFile(errf)
		return strings.Contains(string(b), "attached")
	})
	return detach
}
