package postgres_test

import (
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/postgres"
	"github.com/jackc/pgx/v5"
)

// insertOld writes accounts into schema the way an older chatd did, with
// whatever key it computed then.
func insertOld(t *testing.T, schema string, rows ...[2]string) {
	t.Helper()
	conn := admin(t)
	for _, r := range rows {
		if _, err := conn.Exec(t.Context(), `INSERT INTO `+pgx.Identifier{schema, "users"}.Sanitize()+
			` (username, username_key, password_hash, created_at) VALUES ($1, $2, 'h', now())`, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRekeysUsernames: as in the sqlite package, accounts keyed by an
// older chatd get today's chat.UsernameKey when the store opens, and
// accounts that now collide stop it with a message naming them.
func TestOpenRekeysUsernames(t *testing.T) {
	schema, u := freshSchema(t)
	open(t, u).Close()
	insertOld(t, schema, [2]string{"Bob", "bob"}, [2]string{"b0rn", "b0rn"}, [2]string{"zed", "x-old"}, [2]string{"xavier", "zed"})
	s := open(t, u)
	ctx := t.Context()
	rows, err := admin(t).Query(ctx, `SELECT username, username_key FROM `+pgx.Identifier{schema, "users"}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			t.Fatal(err)
		}
		if key != chat.UsernameKey(name) {
			t.Errorf("%s keeps key %q, want %q", name, key, chat.UsernameKey(name))
		}
	}
	rows.Close()
	if got, err := s.UserByUsername(ctx, "BORN"); err != nil || got.Username != "b0rn" {
		t.Errorf("UserByUsername(BORN) = %v, %v; want b0rn", got, err)
	}
	s.Close()

	insertOld(t, schema, [2]string{"alice", "alice"}, [2]string{"ａｌｉｃｅ", "ａｌｉｃｅ"})
	s2, err := postgres.Open(ctx, u)
	if err == nil {
		s2.Close()
		t.Fatal("Open succeeded with colliding usernames")
	}
	for _, want := range []string{"postgres: ", `"alice" (id 5) and "ａｌｉｃｅ" (id 6)`, "UPDATE users SET username"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
