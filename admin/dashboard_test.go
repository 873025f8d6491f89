package admin

import (
	"io/fs"
	"strings"
	"testing"
)

// TestDashboardRendersTextOnly: the dashboard shows reply texts and
// destination names that came from remote servers; its script must only
// ever set them as text, never parse them as HTML.
func TestDashboardRendersTextOnly(t *testing.T) {
	t.Parallel()
	err := fs.WalkDir(webFiles, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		b, err := fs.ReadFile(webFiles, path)
		if err != nil {
			return err
		}
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"} {
			if strings.Contains(string(b), sink) {
				t.Errorf("%s uses %s: client-supplied text could become markup", path, sink)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
