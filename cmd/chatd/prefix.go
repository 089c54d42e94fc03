package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	chat "github.com/chatd/chat"
	"github.com/jackc/pgx/v5/pgconn"
)

// Redis pub/sub channels are global to a Redis server: unlike keys, they
// ignore the database number in REDIS_URL. Two deployments on one Redis
// would therefore see each other's rooms (course:1, dm:alice|bob, the
// control group that closes sockets) unless their channels differ. chatd
// prefixes every channel with CHANNEL_PREFIX, which by default is derived
// from the database: every process of a deployment shares the database and
// so the prefix, and deployments with different databases never collide.

// maxPrefixLen bounds CHANNEL_PREFIX, in bytes.
const maxPrefixLen = 100

// deploymentIDChars is how many characters of the deployment id (or of
// the hash of the database's location) the default prefix takes.
const deploymentIDChars = 12

// checkChannelPrefix refuses a CHANNEL_PREFIX that would be hard to read in
// logs and in redis-cli: white space, control characters, invalid UTF-8,
// more than maxPrefixLen bytes. Empty means the default.
func checkChannelPrefix(p string) error {
	switch {
	case p == "":
		return nil
	case len(p) > maxPrefixLen:
		return fmt.Errorf("CHANNEL_PREFIX is longer than %d bytes", maxPrefixLen)
	case !utf8.ValidString(p):
		return errors.New("CHANNEL_PREFIX is not valid UTF-8")
	case strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("CHANNEL_PREFIX %q contains white space or control characters", p)
	}
	return nil
}

// deploymentIDer is implemented by stores that keep a random id for their
// database, created with it (chat.Store gains this method with the stored
// messages; until then the assertion keeps this file compiling either way).
type deploymentIDer interface {
	DeploymentID(ctx context.Context) (string, error)
}

// channelPrefix returns the prefix of the redis layer's channels and what it
// was derived from, for the start-up log:
//
//   - an explicit CHANNEL_PREFIX wins;
//   - else, when the store has a deployment id, "chatd:", its first 12
//     characters and ":";
//   - else "chatd:", the first 12 hex digits of the SHA-256 of the
//     database's location (databaseLocation) and ":".
//
// The admin commands that publish on the layer call it too, so they reach
// the servers of their own deployment only.
func channelPrefix(ctx context.Context, explicit string, st chat.Store, databaseURL, dataDir string) (prefix, source string, err error) {
	if explicit != "" {
		return explicit, "CHANNEL_PREFIX", nil
	}
	if d, ok := st.(deploymentIDer); ok {
		id, err := d.DeploymentID(ctx)
		if err != nil {
			return "", "", fmt.Errorf("channel prefix: the database's deployment id: %w", err)
		}
		id = strings.TrimSpace(id)
		if id == "" {
			return "", "", errors.New("channel prefix: the database has an empty deployment id; set CHANNEL_PREFIX")
		}
		if r := []rune(id); len(r) > deploymentIDChars {
			id = string(r[:deploymentIDChars])
		}
		return "chatd:" + id + ":", "the database's deployment id", nil
	}
	loc, err := databaseLocation(databaseURL, dataDir)
	if err != nil {
		return "", "", fmt.Errorf("channel prefix: %w", err)
	}
	sum := sha256.Sum256([]byte(loc))
	return "chatd:" + hex.EncodeToString(sum[:])[:deploymentIDChars] + ":", "a hash of the database's location", nil
}

// databaseLocation names the database that databaseURL and dataDir select,
// the same way for every process that uses it: for SQLite the absolute path
// of the database file with symbolic links resolved; for PostgreSQL
// host:port/database and the search_path (which picks the schema), without
// user or password, so that a rotated password keeps the prefix.
func databaseLocation(databaseURL, dataDir string) (string, error) {
	databaseURL = strings.TrimSpace(databaseURL)
	if databaseURL == "" {
		dir, err := filepath.Abs(dataDir)
		if err != nil {
			return "", fmt.Errorf("data directory: %w", err)
		}
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		return "sqlite:" + filepath.Join(dir, "chatd.db"), nil
	}
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return "", errors.New("DATABASE_URL does not parse")
	}
	return fmt.Sprintf("postgres://%s:%d/%s?search_path=%s", strings.ToLower(cfg.Host), cfg.Port, cfg.Database,
		cfg.RuntimeParams["search_path"]), nil
}
