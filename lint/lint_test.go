package lint

import (
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSeverityText(t *testing.T) {
	t.Parallel()
	for _, s := range []Severity{Info, Warn, Block} {
		b, err := s.MarshalText()
		if err != nil || string(b) != s.String() {
			t.Errorf("MarshalText(%v) = %q, %v", s, b, err)
		}
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, back, err)
		}
	}
	if !(Info < Warn && Warn < Block) {
		t.Error("severities out of order")
	}
	j, _ := json.Marshal(Finding{ID: "x", Severity: Block})
	if !strings.Contains(string(j), `"severity":"block"`) {
		t.Errorf("JSON %s", j)
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	kebab := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	ids := IDs()
	seen := map[string]bool{}
	for _, id := range ids {
		if !kebab.MatchString(id) || seen[id] {
			t.Errorf("ID %q: not kebab-case or repeated", id)
		}
		seen[id] = true
		if r := ruleFor(id); r.fix == "" || !strings.HasSuffix(r.fix, ".") {
			t.Errorf("%s: fix %q is not one sentence", id, r.fix)
		}
	}
	ids[0] = "changed"
	if IDs()[0] == "changed" {
		t.Error("IDs returns the package's own slice")
	}
}

const shortMsg = "From: a <a@example.com>\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: Hello there\r\n\r\nSee https://go.example.net/x and https://bit.ly/abc\r\n"

func TestOptions(t *testing.T) {
	t.Parallel()
	check := func(o Options) []string {
		t.Helper()
		got, err := Check(strings.NewReader(shortMsg), o)
		if err != nil {
			t.Fatal(err)
		}
		var ev []string
		for _, f := range got {
			ev = append(ev, f.ID+" "+f.Evidence)
		}
		return ev
	}
	if got := check(Options{}); !slices.Equal(got, []string{"link-shortener https://bit.ly/abc"}) {
		t.Errorf("default: %q", got)
	}
	if got := check(Options{Shorteners: []string{" Example.NET. "}}); !slices.Equal(got, []string{"link-shortener https://go.example.net/x", "link-shortener https://bit.ly/abc"}) {
		t.Errorf("extra shortener (subdomains match): %q", got)
	}
	if got := check(Options{Disabled: map[string]bool{"link-shortener": true}}); len(got) != 0 {
		t.Errorf("disabled: %q", got)
	}
	if got := check(Options{Bulk: true}); !slices.Contains(got, "bulk-no-unsubscribe bulk sender: no List-Unsubscribe, no List-Unsubscribe-Post") {
		t.Errorf("bulk: %q", got)
	}
}

// The read cap is a cap: Check never reads past it, whatever follows.
func TestMaxBytesStopsReading(t *testing.T) {
	t.Parallel()
	const max = 4096
	src := &countingReader{r: io.MultiReader(strings.NewReader(shortMsg), endless{})}
	if _, err := Check(src, Options{MaxBytes: max}); err != nil {
		t.Fatal(err)
	}
	if src.n > max {
		t.Errorf("read %d bytes, cap %d", src.n, max)
	}
}

func TestReadErrorIsAnError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := Check(io.MultiReader(strings.NewReader("From: a@example.com\r\nSub"), errReader{boom}), Options{})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
