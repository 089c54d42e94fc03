package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
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
		pgx.Identifier{schema}.Sanitize())).Scan(&rows); err != nil || rows != migrationFiles(t) {
		t.Fatalf("schema_version has %d rows (%v), want %d", rows, err, migrationFiles(t))
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

// TestTwoStoresShareSequence opens two Stores, each with its own pool, on
// one schema, as two chatd processes would, and appends from both at once:
// to one room, and in batches that span two rooms in opposite orders. The
// rooms row locks serialise the batches across the pools, so every room is
// numbered 1..N without a gap or a repeat, no batch deadlocks, and a retry
// through the other store finds the original.
func TestTwoStoresShareSequence(t *testing.T) {
	_, u := freshSchema(t)
	stores := []*postgres.Store{open(t, u), open(t, u)}
	ctx := t.Context()
	base := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	const workers, batches = 8, 12
	var (
		mu   sync.Mutex
		errs []error
		all  []*chat.Message
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s, other := stores[w%2], stores[(w+1)%2]
			for b := range batches {
				rooms := []string{"chat:lobby", "chat:lobby"}
				if b%3 == 1 {
					rooms = []string{"chat:a", "chat:lobby"}
				} else if b%3 == 2 {
					rooms = []string{"chat:lobby", "chat:a"}
				}
				batch := make([]*chat.Message, len(rooms))
				retry := make([]*chat.Message, len(rooms))
				for i, room := range rooms {
					id := fmt.Sprintf("%d-%d-%d", w, b, i)
					batch[i] = &chat.Message{Room: room, UserID: int64(w + 1), User: "u", ClientID: id, Text: id, Time: base}
					retry[i] = &chat.Message{Room: room, UserID: int64(w + 1), User: "u", ClientID: id, Text: "retry", Time: base}
				}
				err := s.AppendMessages(ctx, batch)
				if err == nil {
					err = other.AppendMessages(ctx, retry)
				}
				for i := 0; err == nil && i < len(batch); i++ {
					if !retry[i].Duplicate || retry[i].Seq != batch[i].Seq || retry[i].Text != batch[i].Text {
						err = fmt.Errorf("retry %+v of %+v through the other store is not its duplicate", retry[i], batch[i])
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				all = append(all, batch...)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	count := make(map[string]int64)
	seen := make(map[string]bool)
	for _, m := range all {
		count[m.Room]++
		k := fmt.Sprint(m.Room, m.Seq)
		if seen[k] {
			t.Fatalf("%s seq %d was assigned twice", m.Room, m.Seq)
		}
		seen[k] = true
	}
	for room, n := range count {
		for _, s := range stores {
			first, last, err := s.RoomSeq(ctx, room)
			if err != nil || first != 1 || last != n {
				t.Fatalf("RoomSeq(%s) = %d, %d, %v; want 1, %d", room, first, last, err, n)
			}
		}
		got, err := stores[1].Messages(ctx, room, chat.MessageQuery{Limit: chat.MaxMessagesQuery})
		if err != nil || int64(len(got)) != n {
			t.Fatalf("Messages(%s) = %d messages, %v; want %d", room, len(got), err, n)
		}
		for i, m := range got {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d: a gap", room, i, m.Seq)
			}
		}
	}
}

// TestRevocationVersionsFollowCommits records revocations from two stores
// at once. Each recorder locks the table before drawing a version, so
// versions are distinct and, once a version is visible, no lower one can
// still appear.
func TestRevocationVersionsFollowCommits(t *testing.T) {
	_, u := freshSchema(t)
	stores := []*postgres.Store{open(t, u), open(t, u)}
	ctx := t.Context()
	owner := &chat.User{Username: "owner"}
	if err := stores[0].CreateUser(ctx, owner, "h"); err != nil {
		t.Fatal(err)
	}
	c := &chat.Course{Title: "C", OwnerID: owner.ID}
	if err := stores[0].CreateCourse(ctx, c); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 6, 5
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := stores[w%2]
			u := &chat.User{Username: fmt.Sprint("stu", w)}
			if errs[w] = s.CreateUser(ctx, u, "h"); errs[w] != nil {
				return
			}
			for range rounds {
				if errs[w] = s.Enroll(ctx, c.ID, u.ID); errs[w] != nil {
					return
				}
				if errs[w] = s.Unenroll(ctx, c.ID, u.ID); errs[w] != nil {
					return
				}
			}
		})
	}
	// Poll while they run, as every chatd process does: a poller that moves
	// past each version it sees must still see every revocation.
	var (
		seen    []chat.Revocation
		pollErr error
	)
	done, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		after := int64(0)
		for {
			var finished bool
			select {
			case <-done:
				finished = true
			default:
			}
			revs, err := stores[1].Revocations(ctx, after, 7)
			if err != nil {
				pollErr = err
				return
			}
			for _, r := range revs {
				seen = append(seen, r)
				after = r.Version
			}
			if finished && len(revs) == 0 {
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	<-polled
	for _, err := range append(errs, pollErr) {
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := stores[0].Revocations(ctx, 0, 1000)
	if err != nil || len(all) != workers*rounds {
		t.Fatalf("Revocations = %d, %v; want %d", len(all), err, workers*rounds)
	}
	if len(seen) != len(all) {
		t.Fatalf("the poller saw %d revocations, want all %d", len(seen), len(all))
	}
	for i := range all {
		if seen[i] != all[i] {
			t.Fatalf("poller saw %+v at %d, the table has %+v", seen[i], i, all[i])
		}
	}
}

// BenchmarkAppendMessages appends batches of 1, 16 and 128 messages, each
// with a client id, to one room; an op is one batch (one transaction).
// msgs/s is the throughput.
func BenchmarkAppendMessages(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			_, u := pgtest.Schema(b, "chatd_bench")
			s, err := postgres.Open(b.Context(), u)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
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
		})
	}
}

// TestDeleteCourseWaitsForAppend holds a course room's rows lock, as an
// append in flight does, with a message inserted under it, while
// DeleteCourse runs: DeleteCourse waits for the lock and then deletes that
// message too, so no message outlives its course.
func TestDeleteCourseWaitsForAppend(t *testing.T) {
	_, u := freshSchema(t)
	s := open(t, u)
	ctx := t.Context()
	owner := &chat.User{Username: "owner"}
	if err := s.CreateUser(ctx, owner, "h"); err != nil {
		t.Fatal(err)
	}
	c := &chat.Course{Title: "C", OwnerID: owner.ID}
	if err := s.CreateCourse(ctx, c); err != nil {
		t.Fatal(err)
	}
	room := chat.CourseRoomKey(c.ID)
	base := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	if err := s.AppendMessages(ctx, []*chat.Message{{Room: room, User: "g", Text: "one", Time: base}}); err != nil {
		t.Fatal(err)
	}

	// The "append in flight": the rooms row locked, message 2 inserted.
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	for _, q := range []string{
		`SELECT last_seq FROM rooms WHERE key = $1 FOR UPDATE`,
		`INSERT INTO messages (room, seq, sender_key, username, body, created_at) VALUES ($1, 2, 'n:g', 'g', 'two', now())`,
		`UPDATE rooms SET last_seq = 2 WHERE key = $1`,
	} {
		if _, err := tx.Exec(ctx, q, room); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.DeleteCourse(ctx, c.ID) }()
	// Wait until DeleteCourse is blocked by this transaction (an event, not
	// a time).
	watch := admin(t)
	for {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY (pg_blocking_pids(pid)))`, conn.PgConn().PID()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("DeleteCourse returned (%v) while the room was locked", err)
		default:
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, room, chat.MessageQuery{Limit: 10})
	if err != nil || len(got) != 0 {
		t.Fatalf("after DeleteCourse the room has %d messages (%v), want none", len(got), err)
	}
	if first, last, err := s.RoomSeq(ctx, room); err != nil || first != 0 || last != 0 {
		t.Fatalf("RoomSeq = %d, %d, %v; want 0, 0", first, last, err)
	}
}
