package admin

import (
	"path/filepath"
	"testing"

	"sluice/queue"
)

// TestBackupEndpoint (issue 12 item 5): Client.Backup streams a copy of
// the running queue that queue.SaveBackup writes as a checked queue file
// holding the daemon's messages.
func TestBackupEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := []string{f.enqueue(t, "a@src.test", "b@dest.test"), f.enqueue(t, "a@src.test", "c@dest.test")}
	rc, err := f.client.Backup(ctx())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dst := filepath.Join(t.TempDir(), "queue.db")
	s, err := queue.SaveBackup(rc, dst)
	if err != nil || s.Path != dst || len(s.Problems) != 0 || s.Manifest.Messages != 2 {
		t.Fatalf("SaveBackup = %+v, %v", s, err)
	}
	rep, err := queue.CheckPath(dst)
	if err != nil || len(rep.Problems) != 0 || rep.Messages != len(ids) {
		t.Fatalf("CheckPath of the copy = %+v, %v", rep, err)
	}
}
