package lint

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheck: Check never panics, never fails on a reader that cannot
// fail, and every finding it returns is well formed.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(deepNesting(20)))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cHM6Ly9iaXQubHkveCI+\r\n--x--\r\n"))
	ids := IDs()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Check(bytes.NewReader(data), Options{MaxBytes: 64 << 10, Bulk: len(data)%2 == 0})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		for _, fd := range got {
			if !slices.Contains(ids, fd.ID) || fd.Severity != ruleFor(fd.ID).sev || fd.Fix == "" {
				t.Fatalf("malformed finding %+v", fd)
			}
			if len(fd.Evidence) > maxEvidence || !utf8.ValidString(fd.Evidence) && utf8.ValidString(string(data)) {
				t.Fatalf("evidence %q: longer than %d or broken UTF-8", fd.Evidence, maxEvidence)
			}
		}
	})
}

// deepNesting is a message of n nested multiparts, each with its own
// boundary, a text part at the bottom.
func deepNesting(n int) string {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n")
	for i := range n {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nbottom https://bit.ly/deep\r\n")
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

// repeat is an io.Reader of n bytes of a pattern, so that a test of a
// 64 MB message does not hold 64 MB.
type repeat struct {
	pat string
	n   int64
	off int
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = r.pat[r.off]
		r.off = (r.off + 1) % len(r.pat)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

func hostile(head, pat string, n int64, tail string) func() io.Reader {
	return func() io.Reader {
		return io.MultiReader(strings.NewReader(head), &repeat{pat: pat, n: n}, strings.NewReader(tail))
	}
}

const hostileHead = "From: a@example.com\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: x y z\r\n"

// TestHostileMIMEMemory: deep nesting, a flood of parts, broken base64,
// a giant header and a giant HTML tag, each far larger than the read
// cap, cost a bounded amount of allocation (runtime.MemStats.TotalAlloc
// per Check, which also bounds the peak) and finish without error.
func TestHostileMIMEMemory(t *testing.T) {
	const mib = 1 << 20
	deep := deepNesting(5000)
	for _, tc := range []struct {
		name  string
		msg   func() io.Reader
		want  string // a finding ID that must be reported, or ""
		bound uint64 // bytes allocated per Check
	}{
		{"deep nesting", func() io.Reader { return strings.NewReader(deep) }, "mime-malformed", mib},
		{"a flood of parts", hostile(hostileHead+"Content-Type: multipart/mixed; boundary=p\r\n\r\n", "--p\r\nContent-Type: text/plain\r\n\r\nx\r\n", 64*mib, "--p--\r\n"), "mime-malformed", mib},
		{"nested flood", hostile(hostileHead+"Content-Type: multipart/mixed; boundary=p\r\n\r\n", "--p\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n", 64*mib, ""), "mime-malformed", mib},
		// Decoded junk is a stream of tiny tags: allocation churn in
		// proportion to the read cap, none of it held.
		{"broken base64", hostile(hostileHead+"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", "PGI+!!@@##$$%%^^&&**(()) PGE+\r\n", 64*mib, ""), "", 3 * mib},
		{"base64 attachment", hostile(hostileHead+"Content-Type: multipart/mixed; boundary=p\r\n\r\n--p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello there\r\n--p\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n", "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n", 64*mib, "--p--\r\n"), "", 256 << 10},
		{"giant header line", hostile("X-Junk: ", "a", 64*mib, "\r\n\r\nbody"), "mime-malformed", 2 * mib},
		{"giant html tag", hostile(hostileHead+"Content-Type: text/html; charset=utf-8\r\n\r\n<a href=\"https://", "x", 64*mib, "\">y</a>"), "", mib},
		{"giant html text", hostile(hostileHead+"Content-Type: text/html; charset=utf-8\r\n\r\n<p>", "word ", 64*mib, "</p>"), "", mib},
		{"display name of @", hostile("From: \"", "@a.", 200<<10, "\" <a@example.com>\r\n\r\n"), "from-malformed", 2 * mib},
		{"giant text line", hostile(hostileHead+"Content-Type: text/plain; charset=utf-8\r\n\r\n", "https://bit.ly/", 64*mib, ""), "link-shortener", 2 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Finding
			var err error
			per := allocBytes(3, func() { got, err = Check(tc.msg(), Options{}) })
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && !slices.ContainsFunc(got, func(f Finding) bool { return f.ID == tc.want }) {
				t.Errorf("findings %v, want %s", got, tc.want)
			}
			t.Logf("%d bytes allocated per Check; findings %v", per, sortedIDs(got))
			if per > tc.bound {
				t.Errorf("%d bytes allocated per Check, bound %d", per, tc.bound)
			}
		})
	}
}

// allocBytes is the mean of runtime.MemStats.TotalAlloc growth over runs
// of f.
func allocBytes(runs int, f func()) uint64 {
	f() // warm up: lazy package state is not the message's cost
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}
