package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
		return open(t, filepath.Join(t.TempDir(), "chatd.db"))
	})
}

// rawDB opens the database file directly, the way an operator's sqlite3
// shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSetsUpConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	ctx := t.Context()
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != sqlite.KnownSchemaVersion() || v < 1 {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, sqlite.KnownSchemaVersion())
	}
	var mode string
	if err := rawDB(t, path).QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if s.Path() != path {
		t.Fatalf("Path = %q", s.Path())
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	ctx := t.Context()
	u := &chat.User{Username: "alice"}
	if err := s.CreateUser(ctx, u, "h"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on an up-to-date database: %v", err)
	}
	s.Close()
	// Reopening keeps the data and the version.
	s2 := open(t, path)
	if _, err := s2.UserByUsername(ctx, "alice"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	var n int
	if err := rawDB(t, path).QueryRowContext(ctx, "SELECT count(*) FROM schema_version").Scan(&n); err != nil || n != migrationFiles(t) {
		t.Fatalf("schema_version has %d rows, %v; want one per migration", n, err)
	}
}

// migrationFiles returns the number of embedded migrations (their numbers
// may have gaps, see migrations.Load).
func migrationFiles(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	return len(files)
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec("INSERT INTO schema_version (version, applied_at) VALUES (7, 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := sqlite.Open(t.Context(), path)
	if err == nil {
		t.Fatal("Open of a database newer than the binary succeeded")
	}
	want := "sqlite: database schema version 7 is newer than this chatd (knows " +
		string(rune('0'+sqlite.KnownSchemaVersion())) + "); upgrade chatd"
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "a?b.db"), "file:x.db", filepath.Join(dir, "missing", "dir", "chatd.db")} {
		if s, err := sqlite.Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		} else if !strings.HasPrefix(err.Error(), "sqlite: ") {
			t.Errorf("Open(%q) error %q lacks the package prefix", path, err)
		}
	}
	// A file that is not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(ctx, junk); err == nil {
		s.Close()
		t.Error("Open of a junk file succeeded")
	}
	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if s, err := sqlite.Open(cctx, filepath.Join(dir, "c.db")); err == nil {
		s.Close()
		t.Error("Open with a cancelled context succeeded")
	}
}

// TestTokenNotStored checks that the database holds the token's SHA-256 hash
// and nothing from which the token could be read.
func TestTokenNotStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	ctx := t.Context()
	u := &chat.User{Username: "alice"}
	if err := s.CreateUser(ctx, u, "h"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := rawDB(t, path).QueryRowContext(ctx, "SELECT token_hash FROM sessions WHERE id = ?", sess.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, chat.HashSessionToken(sess.Token)) {
		t.Fatalf("token_hash = %x, want SHA-256 of the token", stored)
	}
	s.Close()
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(sess.Token)) {
			t.Fatalf("%s contains the session token", name)
		}
	}
}

// TestAPIKeySecretNotStored checks that the database holds an API key's
// SHA-256 hash and only the prefix lists show, never the secret.
func TestAPIKeySecretNotStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	ctx := t.Context()
	k := &chat.APIKey{Name: "news", Bot: "news", Rooms: "chat:*"}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := rawDB(t, path).QueryRowContext(ctx, "SELECT secret_hash FROM api_keys WHERE id = ?", k.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, chat.HashAPIKey(k.Secret)) {
		t.Fatalf("secret_hash = %x, want SHA-256 of the secret", stored)
	}
	s.Close()
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(k.Secret[len(k.Prefix):])) {
			t.Fatalf("%s contains the API key's secret", name)
		}
	}
}

// TestConcurrentReadersAndWriters runs reads and writes on one store from
// many goroutines; with -race it also checks the Store's own locking.
func TestConcurrentReadersAndWriters(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "chatd.db"))
	ctx := t.Context()
	owner := &chat.User{Username: "owner"}
	if err := s.CreateUser(ctx, owner, "h"); err != nil {
		t.Fatal(err)
	}
	c := &chat.Course{Title: "C", OwnerID: owner.ID}
	if err := s.CreateCourse(ctx, c); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range 20 {
				u := &chat.User{Username: "u" + string(rune('a'+i)) + string(rune('a'+j))}
				if err := s.CreateUser(ctx, u, "h"); err != nil {
					errs <- err
					return
				}
				if err := s.Enroll(ctx, c.ID, u.ID); err != nil {
					errs <- err
					return
				}
				if ok, err := s.CanEnterCourse(ctx, c.ID, u.ID); err != nil || !ok {
					errs <- err
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || len(members) != 160 {
		t.Fatalf("CourseMembers = %d, %v; want 160", len(members), err)
	}
}

func TestDeploymentIDSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s := open(t, path)
	id, err := s.DeploymentID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, path)
	again, err := s2.DeploymentID(t.Context())
	if err != nil || again != id {
		t.Fatalf("after reopening DeploymentID = %q, %v; want %q", again, err, id)
	}
}

// TestTwoStoresShareSequence opens two Stores on one file, as two chatd
// processes would, and appends to one room from both at once: SQLite's
// write lock (BEGIN IMMEDIATE) serialises the batches across them, so the
// room is numbered 1..N without a gap or a repeat.
func TestTwoStoresShareSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	stores := []*sqlite.Store{open(t, path), open(t, path)}
	const perWorker, workers = 20, 4
	base := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	results := make([][]*chat.Message, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := stores[w%2]
			for i := range perWorker {
				batch := []*chat.Message{
					{Room: "chat:lobby", User: "g", ClientID: fmt.Sprintf("%d-%d-a", w, i), Text: "a", Time: base},
					{Room: "chat:lobby", User: "g", ClientID: fmt.Sprintf("%d-%d-b", w, i), Text: "b", Time: base},
				}
				if err := s.AppendMessages(t.Context(), batch); err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], batch...)
			}
		})
	}
	wg.Wait()
	seen := make(map[int64]bool)
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for _, m := range results[w] {
			if seen[m.Seq] || m.Seq < 1 || m.Seq > workers*perWorker*2 {
				t.Fatalf("seq %d assigned twice or out of range", m.Seq)
			}
			seen[m.Seq] = true
		}
	}
	first, last, err := stores[0].RoomSeq(t.Context(), "chat:lobby")
	if err != nil || first != 1 || last != workers*perWorker*2 {
		t.Fatalf("RoomSeq = %d, %d, %v; want 1, %d", first, last, err, workers*perWorker*2)
	}
}

// BenchmarkAppendMessages appends batches of 1, 16 and 128 messages, each
// with a client id, to one room of a database file; an op is one batch
// (one transaction, synchronous=FULL). msgs/s is the throughput.
func BenchmarkAppendMessages(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "chatd.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAppend(b, s, size)
		})
	}
}

func benchAppend(b *testing.B, s chat.Store, size int) {
	now := time.Now()
	batch := make([]*chat.Message, size)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = &chat.Message{Room: "chat:bench", UserID: 1, User: "alice", ClientID: fmt.Sprint("c", n),
				Text: "a typical chat message of some sixty characters, give or take", Time: now}
		}
		if err := s.AppendMessages(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
