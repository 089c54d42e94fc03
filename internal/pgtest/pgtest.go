// Package pgtest gives tests a PostgreSQL schema of their own on the server
// named by CHATD_TEST_POSTGRES_URL, so that test packages running in
// parallel never collide and nothing they did not create is touched.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// URL returns CHATD_TEST_POSTGRES_URL, or skips the test when it is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CHATD_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("CHATD_TEST_POSTGRES_URL is not set; set it to run the PostgreSQL tests, e.g. " +
			"CHATD_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	return u
}

// Admin connects to the test server with URL as given; the connection is
// closed when the test ends.
func Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), URL(t))
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Schema creates a schema named prefix_<random> for one test and drops it
// (and only it) when the test ends. It returns the schema's name and a URL
// whose connections use it as their search_path. Call it before opening
// anything on the URL: cleanups run last-in first-out, so the drop runs
// after those connections are closed.
func Schema(t testing.TB, prefix string) (schema, schemaURL string) {
	t.Helper()
	conn := Admin(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema = prefix + "_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema, WithSearchPath(t, URL(t), schema)
}

// WithSearchPath returns raw (a URL or a keyword/value string) with its
// search_path set to schema.
func WithSearchPath(t testing.TB, raw, schema string) string {
	t.Helper()
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		return raw + " search_path=" + schema // keyword/value form
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
