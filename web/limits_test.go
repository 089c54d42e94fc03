package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/ws"
)

// newLimitServer serves a web.Server on a store with the account alice.
func newLimitServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := password.Hash("a long password")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(t.Context(), &chat.User{Username: "alice"}, hash); err != nil {
		t.Fatal(err)
	}
	hub := ws.NewHub(ws.Config{})
	if err := hub.Start(t.Context(), memory.New(hub.Receive)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Shutdown(context.Background()) })
	cfg.Store = st
	s, err := NewServer(cfg, hub)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func postForm(t *testing.T, base, path string, form url.Values) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       wstest.Timeout, // a failure bound
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", path, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLoginDoesNotWaitForSignups: sign-ups may use only their share of
// the password-hashing capacity. With every sign-up slot taken, a login
// completes while a sign-up waits for a slot, and the sign-up completes
// once one is free.
func TestLoginDoesNotWaitForSignups(t *testing.T) {
	s, srv := newLimitServer(t, Config{})
	for range cap(s.signupSlots) { // sign-ups in progress elsewhere
		s.signupSlots <- struct{}{}
	}
	signup := make(chan int, 1)
	go func() {
		signup <- postForm(t, srv.URL, "/accounts/signup/", url.Values{"username": {"dee"}, "password": {"long enough pw"}, "password2": {"long enough pw"}})
	}()
	if got := postForm(t, srv.URL, "/accounts/login/", url.Values{"username": {"alice"}, "password": {"a long password"}}); got != http.StatusSeeOther {
		t.Fatalf("login while sign-ups are busy: %d, want 303", got)
	}
	select {
	case got := <-signup:
		t.Fatalf("the sign-up finished (%d) without a free slot", got)
	default:
	}
	<-s.signupSlots // one sign-up elsewhere ends
	select {
	case got := <-signup:
		if got != http.StatusSeeOther {
			t.Errorf("sign-up: %d, want 303", got)
		}
	case <-time.After(wstest.Timeout):
		t.Fatal("the sign-up did not finish once a slot was free")
	}
}

// TestSignupSlotsAreAShare: sign-ups get half the hashing capacity (the
// password package runs GOMAXPROCS hashes at once), and at least one slot.
func TestSignupSlotsAreAShare(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	if n := cap(newSignupSlots()); n != max(1, procs/2) || procs >= 2 && n >= procs {
		t.Errorf("%d sign-up slots with GOMAXPROCS %d, want half (at least one)", n, procs)
	}
}
