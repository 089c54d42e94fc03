package chat

import (
	"context"
	"errors"
	"testing"
)

// accounts is a Store that knows only usernames (by key), for the nickname
// rules; its other methods are not called.
type accounts struct {
	Store
	names map[string]string // UsernameKey -> username
	err   error
}

func (a accounts) UserByUsername(_ context.Context, name string) (*User, error) {
	if a.err != nil {
		return nil, a.err
	}
	if n, ok := a.names[UsernameKey(name)]; ok {
		return &User{ID: 1, Username: n}, nil
	}
	return nil, Errorf(ENOTFOUND, "user %q not found", name)
}

func TestCheckNickname(t *testing.T) {
	st := accounts{names: map[string]string{UsernameKey("alice"): "alice", UsernameKey("olga"): "olga"}}
	for _, tc := range []struct {
		nick string
		code string
	}{
		{"Pablo", ""},
		{"María José", ""},
		{"O'Brien", ""},
		{"Ana-2", ""},
		{"李小龍", ""},
		{"", EINVALID},
		{" Pablo", EINVALID},                            // not normalized
		{"Pa  blo", EINVALID},                           // two spaces
		{"Pablo!", EINVALID},                            // a symbol
		{"Pab\u200dlo", EINVALID},                       // an invisible joiner
		{"Pab\u202Elo", EINVALID},                       // an override
		{"Pаblo", EINVALID},                             // Cyrillic а among Latin
		{"'''", EINVALID},                               // nothing but apostrophes
		{"Me", EINVALID},                                // the word the page shows
		{"guest-1a2b3c", EINVALID},                      // a guest's name
		{"Ad min", EINVALID},                            // staff, spaces ignored
		{"System", EINVALID},                            //
		{"Alice", ECONFLICT},                            // an account, another case
		{"ＡＬＩＣＥ", ECONFLICT},                            // full width, keyed as alice
		{"A1ice", ECONFLICT},                            // a look-alike
		{"AIice", ECONFLICT},                            // capital i, as displayed
		{"Olga", ECONFLICT},                             //
		{"0lga", ECONFLICT},                             //
		{"abcdefghijklmnopqrstuvwxyzabcdefg", EINVALID}, // 33 characters
	} {
		err := CheckNickname(context.Background(), st, tc.nick)
		if got := ErrorCode(err); got != tc.code {
			t.Errorf("CheckNickname(%q) = %v (code %q), want code %q", tc.nick, err, got, tc.code)
		}
	}
	down := accounts{err: errors.New("database down")}
	if err := CheckNickname(context.Background(), down, "Pablo"); ErrorCode(err) != EINTERNAL {
		t.Errorf("with the store down: %v, want the store's error", err)
	}
	if got := NormalizeNickname("  María \t José  "); got != "María José" {
		t.Errorf("NormalizeNickname = %q", got)
	}
}
