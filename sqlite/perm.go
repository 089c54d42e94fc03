package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// fileMode is the mode of a database file chatd creates: it holds password
// hashes and session hashes, so only chatd's user may read it.
const fileMode = 0o600

// createPrivate creates the database file at path with mode 0600 if it does
// not exist yet, before SQLite opens it. SQLite would create it with 0644
// (less the umask); it creates the -wal and -shm files with the mode of the
// database file, so they are 0600 too. An existing file keeps its mode: the
// operator may have chosen it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return f.Close()
}
