package web

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/ws"
	_ "modernc.org/sqlite"
)

// TestGuestNeverTakesAnAccountsName: a name that an account of an older
// chatd holds (guest-aaaaaa) or looks like (guest-ccoccc, for the draw
// guest-cc0ccc with a zero) is never given to a guest: the server draws
// again. Through a real socket, with the draws fixed.
func TestGuestNeverTakesAnAccountsName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// Accounts as an older chatd stored them (it keyed by case only).
	for _, name := range []string{"guest-aaaaaa", "guest-ccoccc"} {
		if _, err := db.Exec(`INSERT INTO users (username, username_key, password_hash, created_at) VALUES (?, ?, 'h', 0)`, name, name); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err = sqlite.Open(t.Context(), path) // rekeys the old accounts
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	hub := ws.NewHub(ws.Config{Echo: true})
	layer := memory.New(hub.Receive)
	if err := hub.Start(context.Background(), layer); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Store: st}, hub)
	if err != nil {
		t.Fatal(err)
	}
	draws := []string{"guest-aaaaaa", "guest-cc0ccc", "guest-dddddd"}
	srv.guestName = func(_ []byte, attempt int) string { return draws[attempt] }
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { _ = hub.Shutdown(context.Background()); ts.Close() })

	c := wstest.Dial(t, wstest.WSURL(ts.URL, "/ws/chat/lobby/"), wstest.Options{Subprotocol: ws.Subprotocol})
	if f := c.NextOfType(t, "hello"); f.Str("user") != "guest-dddddd" {
		t.Errorf("guest named %q, want guest-dddddd (the first draw no account holds or imitates)", f.Str("user"))
	}
}
