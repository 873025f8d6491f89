package lint

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpusCase is what a corpus file must produce: exactly these finding
// IDs. bulk marks the files checked as from a domain over bulk_per_day.
type corpusCase struct {
	bulk bool
	ids  []string
}

// corpus lists every file under testdata/corpus. The clean-* files are
// the controls: a plain-text receipt, a multipart newsletter with RFC 8058
// one-click unsubscribe (checked as bulk) and a calendar invite.
var corpus = map[string]corpusCase{
	"clean-receipt.eml":            {},
	"clean-newsletter.eml":         {bulk: true},
	"clean-invite.eml":             {},
	"issue-example.eml":            {ids: []string{"link-shortener", "image-only", "html-no-text", "missing-date", "missing-message-id", "subject-caps"}},
	"link-shortener-text.eml":      {ids: []string{"link-shortener"}},
	"link-text-mismatch.eml":       {ids: []string{"link-text-mismatch"}},
	"link-text-mismatch-ip.eml":    {ids: []string{"link-text-mismatch"}},
	"link-shortener-html-text.eml": {ids: []string{"link-shortener"}},
	"from-missing.eml":             {ids: []string{"from-count"}},
	"from-display-address.eml":     {ids: []string{"from-display-mismatch"}},
	"from-display-brand.eml":       {ids: []string{"from-display-mismatch"}},
	"image-heavy.eml":              {ids: []string{"image-heavy"}},
	"image-no-alt.eml":             {ids: []string{"image-no-alt"}},
	"html-no-text.eml":             {ids: []string{"html-no-text"}},
	"text-html-imbalance.eml":      {ids: []string{"text-html-imbalance"}},
	"bulk-no-unsubscribe.eml":      {bulk: true, ids: []string{"bulk-no-unsubscribe"}},
	"missing-date.eml":             {ids: []string{"missing-date"}},
	"missing-message-id.eml":       {ids: []string{"missing-message-id"}},
	"from-count.eml":               {ids: []string{"from-count"}},
	"from-malformed.eml":           {ids: []string{"from-malformed"}},
	"subject-caps.eml":             {ids: []string{"subject-caps"}},
	"subject-caps-encoded.eml":     {ids: []string{"subject-caps"}},
	"subject-exclaim.eml":          {ids: []string{"subject-exclaim"}},
	"missing-charset.eml":          {ids: []string{"missing-charset"}},
	"mime-malformed.eml":           {ids: []string{"mime-malformed"}},
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/corpus/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(corpus) {
		t.Errorf("%d files in testdata/corpus, %d in the table: every file needs its expectation", len(files), len(corpus))
	}
	covered := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		want, ok := corpus[name]
		if !ok {
			t.Errorf("%s: not in the corpus table", name)
			continue
		}
		for _, id := range want.ids {
			covered[id] = true
		}
		t.Run(strings.TrimSuffix(name, ".eml"), func(t *testing.T) {
			t.Parallel()
			got := lintFile(t, f, Options{Bulk: want.bulk})
			if !slices.Equal(sortedIDs(got), sorted(want.ids)) {
				t.Errorf("findings %v, want %v", got, sorted(want.ids))
			}
		})
	}
	for _, id := range IDs() {
		if !covered[id] {
			t.Errorf("finding %s has no corpus file", id)
		}
	}
}

func lintFile(t testing.TB, path string, o Options) []Finding {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Check(f, o)
	if err != nil {
		t.Fatalf("Check(%s): %v", path, err)
	}
	return got
}

func sortedIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		if !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	return sorted(ids)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}
