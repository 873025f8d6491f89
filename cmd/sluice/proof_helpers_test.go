package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"sluice/config"
	"sluice/internal/fakemx"
	"sluice/internal/selfsigned"
	"sluice/queue"
)

// Helpers of the proof suite (issue 6): a raw SMTP client that can send
// any byte sequence, an in-process fake MX, and offline checks of the
// queue file.

// rawSMTP is a line-level SMTP client: it writes exactly the bytes it is
// given, so the tests can send what no well-behaved client would.
type rawSMTP struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialSMTP connects to addr from local ("" = any loopback address) and
// reads the greeting.
func dialSMTP(t *testing.T, addr, local string) (*rawSMTP, int, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawSMTP{t: t, c: c, r: bufio.NewReader(c)}
	code, text := rc.reply()
	return rc, code, text
}

// reply reads one (possibly multi-line) reply. It returns code 0 when the
// connection is closed or silent for 10 s.
func (rc *rawSMTP) reply() (int, string) {
	rc.t.Helper()
	return rc.replyWithin(10 * time.Second)
}

func (rc *rawSMTP) replyWithin(d time.Duration) (int, string) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(d))
	var lines []string
	for {
		l, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(append(lines, l), "\n")
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			code, _ := strconv.Atoi(l[:min(3, len(l))])
			return code, strings.Join(lines, "\n")
		}
	}
}

// send writes raw bytes.
func (rc *rawSMTP) send(s string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Logf("write: %v", err)
	}
}

// cmd sends one command line and returns its reply.
func (rc *rawSMTP) cmd(line string) (int, string) {
	rc.t.Helper()
	rc.send(line + "\r\n")
	return rc.reply()
}

// must sends a command and fails the test unless the reply has code want.
func (rc *rawSMTP) must(line string, want int) string {
	rc.t.Helper()
	code, text := rc.cmd(line)
	if code != want {
		rc.t.Fatalf("%q: got %q, want %d", line, text, want)
	}
	return text
}

// closed reports whether the server closed the connection (EOF within 5 s).
func (rc *rawSMTP) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.r.ReadByte()
	return err == io.EOF || (err != nil && !isTimeout(err))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// startFakeMX starts an in-process fake MX on loopback.
func startFakeMX(t *testing.T, o fakemx.Options) *fakemx.Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := fakemx.Start(o)
	if err != nil {
		t.Fatalf("fakemx: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkQueueFile runs bbolt's consistency check (tx.Check) on the queue
// file of a stopped relay, read-only so that the check changes nothing.
func checkQueueFile(t *testing.T, dataDir string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dataDir, "queue.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open queue file: %v", err)
	}
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bbolt.Tx) error {
		for e := range tx.Check() {
			problems = append(problems, e.Error())
		}
		return nil
	})
	if err != nil || len(problems) > 0 {
		t.Fatalf("queue file inconsistent: err=%v problems=%v", err, problems)
	}
}

// queueCounts opens the queue of a stopped relay and returns its counters.
func queueCounts(t *testing.T, dataDir string) map[queue.State]int {
	t.Helper()
	qo := queue.OptionsFrom(config.Default())
	qo.Path, qo.Logger = filepath.Join(dataDir, "queue.db"), slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	defer q.Close()
	c, err := q.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSignedCert writes a certificate and key for "sluice.test" into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	c, err := selfsigned.New(time.Now(), "sluice.test")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// procStat reads a process's resident memory (kB) and open descriptors.
func procStat(pid int) (rssKB, fds int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				rssKB, _ = strconv.Atoi(f[1])
			}
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rssKB, len(ents)
}

// procMem reads a process's anonymous and file-backed resident memory
// (kB): a leak shows in the first, the mapped queue file in the second.
func procMem(pid int) (anonKB, fileKB int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "RssAnon:":
			anonKB, _ = strconv.Atoi(f[1])
		case "RssFile:":
			fileKB, _ = strconv.Atoi(f[1])
		}
	}
	return anonKB, fileKB
}

// peakRSS reads VmHWM, the peak resident memory (kB) of a process.
func peakRSS(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return 0
}
