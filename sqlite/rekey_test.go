package sqlite_test

import (
	"path/filepath"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/sqlite"
)

// insertOld writes accounts the way an older chatd did, with whatever key
// it computed then, bypassing today's validation.
func insertOld(t *testing.T, path string, rows ...[2]string) {
	t.Helper()
	db := rawDB(t, path)
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO users (username, username_key, password_hash, created_at) VALUES (?, ?, 'h', 0)`, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
}

// TestOpenRekeysUsernames: accounts written under the old key (case folding
// only) get today's chat.UsernameKey when the store opens, without a schema
// change, so that look-alikes of them are refused and found; keys that must
// trade places are written in two steps.
func TestOpenRekeysUsernames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	open(t, path).Close()
	insertOld(t, path,
		[2]string{"Bob", "bob"},
		[2]string{"b0rn", "b0rn"},  // old key; today "born"
		[2]string{"zed", "x-old"},  // wants "zed"
		[2]string{"xavier", "zed"}, // holds "zed", wants "xavier"
	)
	s := open(t, path)
	ctx := t.Context()
	var got []string
	rows, err := rawDB(t, path).Query(`SELECT username, username_key FROM users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			t.Fatal(err)
		}
		if key != chat.UsernameKey(name) {
			got = append(got, name+"="+key)
		}
	}
	rows.Close()
	if len(got) > 0 {
		t.Errorf("keys not brought up to date: %v", got)
	}
	if u, err := s.UserByUsername(ctx, "BORN"); err != nil || u.Username != "b0rn" {
		t.Errorf("UserByUsername(BORN) = %v, %v; want b0rn", u, err)
	}
	if err := s.CreateUser(ctx, &chat.User{Username: "born"}, "h"); chat.ErrorCode(err) != chat.ECONFLICT {
		t.Errorf("CreateUser(born) next to b0rn: %v, want a conflict", err)
	}
}

// TestOpenRefusesCollidingUsernames: accounts an older chatd accepted that
// are now one name (full-width, Cyrillic, invisible filler) stop the store
// from opening, with a message naming both of each pair and the way out.
func TestOpenRefusesCollidingUsernames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	open(t, path).Close()
	insertOld(t, path,
		[2]string{"alice", "alice"},
		[2]string{"ａｌｉｃｅ", "ａｌｉｃｅ"},
		[2]string{"bob", "bob"},
		[2]string{"bob\u3164", "bob\u3164"},
	)
	s, err := sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with colliding usernames")
	}
	for _, want := range []string{"sqlite: " + path, `"alice" (id 1) and "ａｌｉｃｅ" (id 2)`, `"bob" (id 3)`, "(id 4)", "UPDATE users SET username"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// The operator's fix from the message; then it opens.
	db := rawDB(t, path)
	if _, err := db.Exec(`UPDATE users SET username = 'alice2', username_key = 'alice2' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE users SET username = 'bob2', username_key = 'bob2' WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	open(t, path)
}
