package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	chat "github.com/chatd/chat"
)

// TestFilesArePrivate: in a directory that already exists, under the usual
// umask 022, the database file and its -wal and -shm companions are created
// 0600 (SQLite alone would make them 0644): they hold password and session
// hashes. A file that already exists keeps the mode the operator gave it.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := t.TempDir() // exists before chatd runs, as a volume or DATA_DIR would
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "chatd.db")
	s := open(t, path)
	// A write, so that the write-ahead log has content while the store is open.
	if err := s.CreateUser(t.Context(), &chat.User{Username: "perm"}, "hash"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(name), mode)
		}
	}

	kept := filepath.Join(dir, "kept.db")
	if err := os.WriteFile(kept, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	open(t, kept)
	if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("existing file: mode %v, %v; want 0640 kept", fi.Mode().Perm(), err)
	}
}
