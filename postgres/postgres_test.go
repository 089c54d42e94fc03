package postgres_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/pgtest"
	"github.com/chatd/chat/postgres"
	"github.com/chatd/chat/storetest"
	"github.com/jackc/pgx/v5"
)

func testURL(t *testing.T) string { return pgtest.URL(t) }

func admin(t *testing.T) *pgx.Conn { return pgtest.Admin(t) }

func freshSchema(t *testing.T) (schema, schemaURL string) { return pgtest.Schema(t, "chatd_test") }

func withSearchPath(t *testing.T, raw, schema string) string {
	return pgtest.WithSearchPath(t, raw, schema)
}

func open(t *testing.T, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) chat.Store {
		_, u := freshSchema(t)
		return open(t, u)
	})
}

func TestMigrateAndSchemaVersion(t *testing.T) {
	schema, u := freshSchema(t)
	s := open(t, u)
	ctx := t.Context()
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != postgres.KnownSchemaVersion() || v < 1 {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, postgres.KnownSchemaVersion())
	}
	// The tables went into the test schema, not public.
	var n int
	if err := admin(t).QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = $1 AND table_name IN ('users', 'sessions', 'courses', 'enrollments', 'schema_version')`,
		schema).Scan(&n); err != nil || n != 5 {
		t.Fatalf("found %d of 5 tables in %s (%v)", n, schema, err)
	}
	if err := s.CreateUser(ctx, &chat.User{Username: "alice"}, "h"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on an up-to-date database: %v", err)
	}
	s.Close()
	s2 := open(t, u)
	if _, err := s2.UserByUsername(ctx, "ALICE"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

// TestConcurrentOpen starts several stores on one empty schema at once: the
// advisory lock makes them migrate one after the other, so all succeed and
// each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	schema, u := freshSchema(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), u) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
		} else {
			stores[i].Close()
		}
	}
	var rows int
	if err := admin(t).QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM %s.schema_version`,
		pgx.Identifier{schema}.Sanitize())).Scan(&rows); err != nil || rows != postgres.KnownSchemaVersion() {
		t.Fatalf("schema_version has %d rows (%v), want %d", rows, err, postgres.KnownSchemaVersion())
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	schema, u := freshSchema(t)
	s := open(t, u)
	s.Close()
	if _, err := admin(t).Exec(t.Context(), fmt.Sprintf(`INSERT INTO %s.schema_version (version, applied_at) VALUES (7, now())`,
		pgx.Identifier{schema}.Sanitize())); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(t.Context(), u)
	want := fmt.Sprintf("postgres: database schema version 7 is newer than this chatd (knows %d); upgrade chatd",
		postgres.KnownSchemaVersion())
	if err == nil || err.Error() != want {
		t.Fatalf("Open of a newer database: %v, want %q", err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	raw := testURL(t)
	ctx := t.Context()
	tests := []struct {
		name, url, want string
	}{
		{"bad url", "postgres://%zz", "postgres: "},
		{"missing schema", withSearchPath(t, raw, "chatd_test_does_not_exist"), "no schema of search_path"},
		{"nothing listening", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5", "postgres: connect to 127.0.0.1:1"},
	}
	for _, tt := range tests {
		s, err := postgres.Open(ctx, tt.url)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "postgres: ") {
			t.Errorf("%s: error %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

// TestTokenNotStored checks that the database holds the token's SHA-256 hash
// and not the token.
func TestTokenNotStored(t *testing.T) {
	schema, u := freshSchema(t)
	s := open(t, u)
	ctx := t.Context()
	user := &chat.User{Username: "alice"}
	if err := s.CreateUser(ctx, user, "h"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.CreateSession(ctx, user.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	var row string
	if err := admin(t).QueryRow(ctx, fmt.Sprintf(`SELECT token_hash, s::text FROM %s.sessions s WHERE id = $1`,
		pgx.Identifier{schema}.Sanitize()), sess.ID).Scan(&stored, &row); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, chat.HashSessionToken(sess.Token)) {
		t.Fatalf("token_hash = %x, want SHA-256 of the token", stored)
	}
	if strings.Contains(row, sess.Token) {
		t.Fatalf("the sessions row %q contains the token", row)
	}
}
