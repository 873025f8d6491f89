package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestStorageErrMapping(t *testing.T) {
	t.Parallel()
	pathErr := func(e syscall.Errno) error { return &fs.PathError{Op: "write", Path: "/q.db", Err: e} }
	tests := []struct {
		name    string
		err     error
		noSpace bool
	}{
		{"ENOSPC", pathErr(syscall.ENOSPC), true},
		{"EDQUOT", pathErr(syscall.EDQUOT), true},
		{"EROFS", pathErr(syscall.EROFS), true},
		{"EACCES", pathErr(syscall.EACCES), true},
		{"EPERM", pathErr(syscall.EPERM), true},
		{"bare errno", syscall.ENOSPC, true},
		{"wrapped twice", fmt.Errorf("commit: %w", pathErr(syscall.ENOSPC)), true},
		// bbolt's grow path formats with %s and loses the errno.
		{"text only", fmt.Errorf("file resize error: %s", pathErr(syscall.ENOSPC)), true},
		{"ErrNoSpace", ErrNoSpace, true},
		{"EIO", pathErr(syscall.EIO), false},
		{"EBADF", pathErr(syscall.EBADF), false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := storageErr("commit", tt.err)
			if errors.Is(got, ErrNoSpace) != tt.noSpace {
				t.Errorf("storageErr(%v) = %v; ErrNoSpace = %v, want %v", tt.err, got, !tt.noSpace, tt.noSpace)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("storageErr(%v) = %v does not wrap its cause", tt.err, got)
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
		noSpace   bool
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
			q, err := Open(Options{Path: tt.setup(t), Logger: quietLogger()})
			if err == nil {
				_ = q.Close()
				t.Fatal("Open succeeded")
			}
			if tt.noSpace && !errors.Is(err, ErrNoSpace) {
				t.Errorf("Open = %v, want ErrNoSpace", err)
			}
		})
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without Path succeeded")
	}
}
