package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestStorageErrMapping(t *testing.T) {
	t.Parallel()
	pathErr := func(e syscall.Errno) error { return &fs.PathError{Op: "write", Path: "/q.db", Err: e} }
	tests := []struct {
		name       string
		err        error
		noSpace    bool
		unwritable bool
	}{
		{"ENOSPC", pathErr(syscall.ENOSPC), true, false},
		{"EDQUOT", pathErr(syscall.EDQUOT), true, false},
		// A read-only or unwritable data dir is not a full disk: the
		// operator must be told the real cause (issue 9 item 10), and
		// the client gets 451 4.3.0, not 452 4.3.1.
		{"EROFS", pathErr(syscall.EROFS), false, true},
		{"EACCES", pathErr(syscall.EACCES), false, true},
		{"EPERM", pathErr(syscall.EPERM), false, true},
		{"EROFS text only", fmt.Errorf("file resize error: %s", pathErr(syscall.EROFS)), false, true},
		{"bare errno", syscall.ENOSPC, true, false},
		{"wrapped twice", fmt.Errorf("commit: %w", pathErr(syscall.ENOSPC)), true, false},
		// bbolt's grow path formats with %s and loses the errno.
		{"text only", fmt.Errorf("file resize error: %s", pathErr(syscall.ENOSPC)), true, false},
		{"ErrNoSpace", ErrNoSpace, true, false},
		{"EIO", pathErr(syscall.EIO), false, false},
		{"EBADF", pathErr(syscall.EBADF), false, false},
		{"other", errors.New("boom"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := storageErr("commit", tt.err)
			if errors.Is(got, ErrNoSpace) != tt.noSpace {
				t.Errorf("storageErr(%v) = %v; ErrNoSpace = %v, want %v", tt.err, got, !tt.noSpace, tt.noSpace)
			}
			if errors.Is(got, ErrUnwritable) != tt.unwritable {
				t.Errorf("storageErr(%v) = %v; ErrUnwritable = %v, want %v", tt.err, got, !tt.unwritable, tt.unwritable)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("storageErr(%v) = %v does not wrap its cause", tt.err, got)
			}
			if tt.unwritable && strings.Contains(got.Error(), "no space") {
				t.Errorf("storageErr(%v) = %q talks of space", tt.err, got)
			}
		})
	}
	if storageErr("x", nil) != nil {
		t.Error("storageErr(nil) != nil")
	}
}

func TestOpenUnwritable(t *testing.T) {
	t.Parallel()
	root := os.Geteuid() == 0
	tests := []struct {
		name      string
		rootSkips bool // root ignores permission bits
		setup     func(t *testing.T) string
		// unwritable: the error is ErrUnwritable and names the cause.
		unwritable bool
	}{
		{"read-only dir", true, func(t *testing.T) string {
			d := filepath.Join(t.TempDir(), "ro")
			if err := os.Mkdir(d, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(d, 0o700) })
			return filepath.Join(d, "queue.db")
		}, true},
		{"read-only file", true, func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "queue.db")
			if err := os.WriteFile(p, nil, 0o400); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"path is a directory", false, func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "queue.db")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"parent is a file", false, func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, "queue.db")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.rootSkips && root {
				t.Skip("root ignores permission bits")
			}
			q, err := Open(testOptions(tt.setup(t)))
			if err == nil {
				_ = q.Close()
				t.Fatal("Open succeeded")
			}
			if tt.unwritable && (!errors.Is(err, ErrUnwritable) || errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "permission denied")) {
				t.Errorf("Open = %v, want ErrUnwritable naming the cause, not ErrNoSpace", err)
			}
		})
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without Path succeeded")
	}
}
