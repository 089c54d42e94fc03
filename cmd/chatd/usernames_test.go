package main

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/ws"
)

// TestSignupRefusesImpostors runs the real server: a visitor cannot sign up
// under a live guest's name, under the page's own label "Me", or as a
// look-alike of an existing account (full width, another script, an
// invisible filler, a capital I for an l, a zero for an o); staff names are
// for operators. The names that are refused say why.
func TestSignupRefusesImpostors(t *testing.T) {
	sc := newSchool(t, "sqlite", nil) // olga, alice, bob, carol
	signup := func(name string) (int, string) {
		t.Helper()
		resp, body := sc.post(t, "/accounts/signup/", "", url.Values{"username": {name}, "password": {"long enough pw"}, "password2": {"long enough pw"}})
		return resp.StatusCode, html.UnescapeString(body)
	}

	// A guest in the lobby, as the issue reproduced it.
	c := wstest.Dial(t, sc.ws("/ws/chat/lobby/"), wstest.Options{Subprotocol: ws.Subprotocol})
	guest := c.NextOfType(t, "hello").Str("user")
	if !strings.HasPrefix(guest, "guest-") {
		t.Fatalf("guest is %q", guest)
	}

	for _, tc := range []struct {
		name   string
		status int
		reason string
	}{
		{guest, 400, "is reserved"},
		{strings.ToUpper(guest), 400, "is reserved"},
		{"guest-000000", 400, "is reserved"},
		{"Me", 400, "is reserved"},
		{"someone", 400, "is reserved"},
		{"admin", 400, "reserved for the site's staff"},
		{"ＡＬＩＣＥ", 409, "taken"},                             // full width: normalized to ALICE, alice's name
		{"аlice", 400, "mixes the scripts Cyrillic, Latin"}, // Cyrillic а
		{"alice\u3164", 400, "may not use"},                 // Hangul filler
		{"AIice", 409, `looks like the existing account "alice"`},
		{"b0b", 409, "taken"}, // digit zero
		{"caro1", 409, "taken"},
	} {
		status, body := signup(tc.name)
		if status != tc.status || !strings.Contains(body, tc.reason) {
			t.Errorf("sign-up as %q: %d, want %d with %q", tc.name, status, tc.status, tc.reason)
		}
		if status == http.StatusSeeOther {
			t.Errorf("sign-up as %q succeeded", tc.name)
		}
	}
	// None of them exists now; a plain new name still works.
	users, err := sc.st.ListUsers(t.Context())
	if err != nil || len(users) != 4 {
		t.Errorf("accounts after the refused sign-ups: %d, %v", len(users), err)
	}
	if status, _ := signup("dora"); status != http.StatusSeeOther {
		t.Errorf("sign-up as dora: %d, want 303", status)
	}

	// The operator's createuser keeps the same rules but may name staff.
	env := func(k string) string {
		return map[string]string{"DATA_DIR": envValue(sc.env, "DATA_DIR"), "CHATD_PASSWORD": "pw-of-admin"}[k]
	}
	for name, want := range map[string]string{guest: "reserved", "Me": "reserved", "AIice": "looks like", "ａｌｉｃｅ": "already exists"} {
		err := run(t.Context(), []string{"createuser", name}, env, strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("createuser %q: %v, want an error with %q", name, err, want)
		}
	}
	if err := run(t.Context(), []string{"createuser", "admin"}, env, strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Errorf("createuser admin: %v", err)
	}
	if _, err := sc.st.UserByUsername(t.Context(), "admin"); chat.ErrorCode(err) != "" {
		t.Errorf("admin not created: %v", err)
	}
}
