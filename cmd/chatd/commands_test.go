package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatd/chat/internal/pgtest"
	"github.com/chatd/chat/internal/testserver"
)

// chatdCmd runs the real chatd binary with args and env (added to a minimal
// environment) and returns its exit status, standard output and error.
func chatdCmd(t *testing.T, stdin string, args []string, env ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestSubcommandsTakeTheirFlags runs the binary: every subcommand parses its
// own flags with the environment as defaults, a flag wins over the
// environment, and a flag it does not know is a usage error (exit status 2,
// usage on stderr) rather than being ignored.
func TestSubcommandsTakeTheirFlags(t *testing.T) {
	envDir := filepath.Join(t.TempDir(), "env-data") // DATA_DIR in the environment
	baseEnv := []string{"DATA_DIR=" + envDir}

	t.Run("unknown flags are usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"-bogus"},
			{"serve", "-bogus"},
			{"layer", "check", "-bogus"},
			{"layer"},
			{"layer", "check", "extra"},
			{"migrate", "-bogus"},
			{"version", "-bogus"},
			{"listusers", "-bogus"},
			{"createuser", "--bogus", "alice"},
			{"unenroll", "-bogus", "1", "alice"},
			{"members"},
			{"frobnicate"},
		} {
			code, _, stderr := chatdCmd(t, "", args, baseEnv...)
			if code != 2 {
				t.Errorf("chatd %s: exit status %d, want 2\n%s", strings.Join(args, " "), code, stderr)
			}
			if !strings.Contains(stderr, "sage") && !strings.Contains(stderr, "see chatd -h") {
				t.Errorf("chatd %s printed no usage:\n%s", strings.Join(args, " "), stderr)
			}
		}
		if _, err := os.Stat(envDir); err == nil {
			t.Errorf("a refused command line created %s", envDir)
		}
	})

	t.Run("migrate -data-dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "flag-data")
		code, out, stderr := chatdCmd(t, "", []string{"migrate", "-data-dir", dir}, baseEnv...)
		if code != 0 || !strings.Contains(out, "SQLite "+filepath.Join(dir, "chatd.db")) {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "chatd.db")); err != nil {
			t.Errorf("no database in the flag's directory: %v", err)
		}
		if _, err := os.Stat(envDir); err == nil {
			t.Errorf("migrate -data-dir also created DATA_DIR %s", envDir)
		}
	})

	t.Run("migrate -database-url", func(t *testing.T) {
		// Nothing listens there: the error shows PostgreSQL was tried
		// (SQLite in DATA_DIR used to be migrated instead).
		url := "postgres://nobody@127.0.0.1:" + closedPort(t) + "/x?sslmode=disable&connect_timeout=5"
		code, _, stderr := chatdCmd(t, "", []string{"migrate", "-database-url", url}, baseEnv...)
		if code != 1 || !strings.Contains(stderr, "postgres: connect to 127.0.0.1") {
			t.Errorf("exit %d, stderr %q; want a PostgreSQL connection error", code, stderr)
		}
		if _, err := os.Stat(envDir); err == nil {
			t.Errorf("migrate -database-url migrated SQLite in DATA_DIR")
		}
		if os.Getenv("CHATD_TEST_POSTGRES_URL") == "" {
			return
		}
		_, u := pgtest.Schema(t, "chatd_migrate")
		code, out, stderr := chatdCmd(t, "", []string{"migrate", "-database-url", u}, baseEnv...)
		if code != 0 || !strings.HasPrefix(out, "PostgreSQL ") {
			t.Errorf("exit %d, stdout %q, stderr %q; want PostgreSQL migrated", code, out, stderr)
		}
	})

	t.Run("admin commands take -data-dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "admin-data")
		code, out, stderr := chatdCmd(t, "pw-of-flag-user\n", []string{"createuser", "--password-stdin", "-data-dir", dir, "flaguser"}, baseEnv...)
		if code != 0 || !strings.Contains(out, `created user "flaguser"`) {
			t.Fatalf("createuser: exit %d, %q %q", code, out, stderr)
		}
		code, out, _ = chatdCmd(t, "", []string{"listusers", "-data-dir", dir}, baseEnv...)
		if code != 0 || !strings.Contains(out, "flaguser") {
			t.Errorf("listusers -data-dir: exit %d, %q", code, out)
		}
		if _, err := os.Stat(envDir); err == nil {
			t.Errorf("admin commands with -data-dir used DATA_DIR")
		}
	})

	t.Run("layer check flags", func(t *testing.T) {
		code, out, stderr := chatdCmd(t, "", []string{"layer", "check", "-channel-layer", "memory"}, "CHANNEL_LAYER=rabbitmq")
		if code != 0 || !strings.Contains(out, "OK: the memory layer works") {
			t.Errorf("-channel-layer memory over a bad CHANNEL_LAYER: exit %d, %q %q", code, out, stderr)
		}
		redisURL := os.Getenv("CHATD_TEST_REDIS_URL")
		if redisURL == "" {
			t.Skip("CHATD_TEST_REDIS_URL is not set: the Redis cases need it")
		}
		code, out, stderr = chatdCmd(t, "", []string{"layer", "check", "-channel-layer", "redis", "-redis-url", redisURL})
		if code != 0 || !strings.Contains(out, "OK: the redis layer at ") {
			t.Errorf("layer check -channel-layer redis -redis-url: exit %d, %q %q", code, out, stderr)
		}
		// CHANNEL_LAYER=redis from the environment, the address as a flag.
		code, out, stderr = chatdCmd(t, "", []string{"layer", "check", "-redis-url", redisURL, "-channel-prefix", "chatd-test-check:"}, "CHANNEL_LAYER=redis")
		if code != 0 || !strings.Contains(out, "OK: the redis layer at ") || !strings.Contains(out, `Redis channel "chatd-test-check:`) {
			t.Errorf("CHANNEL_LAYER=redis with -redis-url: exit %d, %q %q", code, out, stderr)
		}
	})
}
