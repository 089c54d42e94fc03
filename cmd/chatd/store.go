package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/postgres"
	"github.com/chatd/chat/sqlite"
)

// openStore opens the store that DATABASE_URL and DATA_DIR select, applying
// pending migrations: PostgreSQL for a postgres:// or postgresql:// URL,
// SQLite in dataDir/chatd.db (creating dataDir with mode 0700 if needed) for
// an empty one. Any other URL is refused.
func openStore(ctx context.Context, databaseURL, dataDir string) (chat.Store, error) {
	databaseURL = strings.TrimSpace(databaseURL)
	switch scheme, _, _ := strings.Cut(databaseURL, "://"); {
	case databaseURL == "":
		if dataDir == "" {
			return nil, errors.New("no database: set DATA_DIR (for SQLite) or DATABASE_URL (for PostgreSQL)")
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		return sqlite.Open(ctx, filepath.Join(dataDir, "chatd.db"))
	case scheme == "postgres" || scheme == "postgresql":
		return postgres.Open(ctx, databaseURL)
	default:
		// Name only the scheme: the rest may hold a password.
		if !strings.Contains(databaseURL, "://") {
			scheme = "(no scheme)"
		}
		return nil, fmt.Errorf("DATABASE_URL scheme %s is not supported: use postgres://user@host:5432/dbname for PostgreSQL, or leave DATABASE_URL empty for SQLite in DATA_DIR", scheme)
	}
}

// storeName describes where a store keeps its data, without credentials.
func storeName(databaseURL, dataDir string) string {
	if strings.TrimSpace(databaseURL) == "" {
		return "SQLite " + filepath.Join(dataDir, "chatd.db")
	}
	if u, err := url.Parse(strings.TrimSpace(databaseURL)); err == nil {
		return "PostgreSQL " + u.Host + u.Path
	}
	return "PostgreSQL"
}

// runMigrate is "chatd migrate": it opens the store, which creates or
// upgrades the schema, and prints the schema version.
func runMigrate(ctx context.Context, databaseURL, dataDir string, stdout io.Writer) error {
	st, err := openStore(ctx, databaseURL, dataDir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer st.Close()
	v, ok := st.(interface {
		SchemaVersion(context.Context) (int, error)
	})
	if !ok {
		return fmt.Errorf("migrate: store %T does not report its schema version", st)
	}
	n, err := v.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "%s: schema version %d (up to date)\n", storeName(databaseURL, dataDir), n)
	return nil
}
