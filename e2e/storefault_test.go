package e2e_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/testserver"
	_ "modernc.org/sqlite" // the "sqlite" driver, to lock the database from outside
)

// expectStoreOutage connects a client, breaks the store, and sends a message with an id while the store cannot take
// it: the sender gets an error frame naming the id and no ack, and /readyz
// answers 503. Then heal() brings the store back: /readyz answers 200 by
// itself, and the same id is stored once and acknowledged.
func expectStoreOutage(t *testing.T, srv *testserver.Server, room string, breakStore, heal func()) {
	t.Helper()
	cc := newChatClient(t, "sender", func() string { return wsURL(srv, "/ws/chat/"+room+"/") })
	cc.connect()
	breakStore()
	if err := cc.send("during", "while the store is away"); err != nil {
		t.Fatal(err)
	}
	if err := cc.pump(func() bool { return len(cc.errors) > 0 || len(cc.acked) > 0 }); err != nil {
		t.Fatal(err)
	}
	if len(cc.acked) > 0 || !strings.Contains(cc.errors[0], "unavailable") {
		t.Fatalf("acks %v, errors %v; want an unavailable error and no ack", cc.acked, cc.errors)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 503 {
		t.Errorf("/readyz while the store is away: %d %s, want 503", code, body)
	}
	heal()
	waitFor(t, "/readyz to answer 200 once the store is back", func() bool {
		code, _ := get(t, srv.URL+"/readyz")
		return code == 200
	})
	if err := cc.send("during", "while the store is away"); err != nil {
		t.Fatal(err)
	}
	if err := cc.pump(func() bool { return cc.acked["during"] && cc.last == 1 }); err != nil {
		t.Fatal(err)
	}
	checkHistory(t, history(t, srv.URL, "/api/chat/"+room+"/messages", ""), cc)
}

// waitFor polls cond until it holds; the bound is a failure bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", patience, what)
		}
	}
}

// TestSQLiteLockedByAnotherProcess: another process holds SQLite's write
// lock (as the sqlite3 shell in a long transaction would): senders get error
// frames, nothing is acknowledged, /readyz says 503, and the service
// returns by itself when the lock is released.
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	srv := testserver.Start(t, nil, "DATA_DIR="+dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "chatd.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectStoreOutage(t, srv, "locked", func() {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPostgresUnreachable: chatd's PostgreSQL (one this test starts on a
// spare port, never the shared one) stops: senders get error frames,
// nothing is acknowledged, /readyz says 503, and the service returns by
// itself when PostgreSQL does.
func TestPostgresUnreachable(t *testing.T) {
	pg := startPostgres(t)
	srv := testserver.Start(t, nil, "DATABASE_URL="+pg.url)
	expectStoreOutage(t, srv, "pgdown", func() { pg.ctl("stop", "-m", "immediate") }, pg.start)
}

// postgres is a PostgreSQL server of one test.
type postgres struct {
	t         *testing.T
	bin, data string
	port      string
	url       string
}

// startPostgres initialises and starts a PostgreSQL cluster in a temporary
// directory on a spare port, or skips the test when the binaries are not
// installed (CI has them: it runs the shared PostgreSQL from the same
// packages).
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("PostgreSQL's server binaries (initdb) are missing")
		}
		t.Skip("PostgreSQL's server binaries (initdb) are not installed")
	}
	// Not t.TempDir: the postgres user must be able to reach the directory.
	base, err := os.MkdirTemp("", "chatd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	pg := &postgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), data: filepath.Join(base, "pg"), port: redistest.FreePort(t)}
	pg.url = "postgres://postgres@127.0.0.1:" + pg.port + "/postgres?sslmode=disable"
	if err := os.MkdirAll(pg.data, 0o700); err != nil {
		t.Fatal(err)
	}
	pg.chown(base)
	pg.run("initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "--no-sync")
	pg.start()
	t.Cleanup(func() {
		// Stopped already if the test failed half-way: nothing to report.
		_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(pg.bin, "pg_ctl"), "-D", pg.data, "stop", "-m", "immediate").Run()
		_ = exec.Command(filepath.Join(pg.bin, "pg_ctl"), "-D", pg.data, "stop", "-m", "immediate").Run()
	})
	return pg
}

// start starts the server and waits until it accepts connections.
func (pg *postgres) start() {
	pg.ctl("start", "-w", "-o", "-p "+pg.port+" -k "+filepath.Dir(pg.data)+" -c listen_addresses=127.0.0.1 -c fsync=off")
}

// chown gives dir to the postgres user when the test runs as root
// (PostgreSQL refuses to run as root).
func (pg *postgres) chown(dir string) {
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		pg.t.Skip("running as root without a postgres user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Chown(p, uid, gid)
		}
		return err
	})
}

func (pg *postgres) run(name string, args ...string) {
	pg.t.Helper()
	path := filepath.Join(pg.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		pg.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (pg *postgres) ctl(args ...string) {
	pg.t.Helper()
	pg.run("pg_ctl", append([]string{"-D", pg.data, "-l", filepath.Join(filepath.Dir(pg.data), "log")}, args...)...)
}

func (pg *postgres) String() string { return fmt.Sprintf("postgres on %s", pg.port) }
