package chat_test

import (
	"fmt"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
)

// TestUsernameRules covers the rules of username.go one by one: what a new
// account may be called, and which names are one account.
func TestUsernameRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		signup bool   // ValidateSignupUsername instead of ValidateUsername
		want   string // "" for valid, else a substring of the error
	}{
		{name: "alice"},
		{name: "Alice.Smith+chat@example-school_1"},
		{name: "élève"},
		{name: "Иван"},           // Cyrillic alone
		{name: "Σοφία"},          // Greek alone
		{name: "学生"},             // Han
		{name: "tanaka田中たなかタナカ"}, // Latin with Japanese
		{name: "kim김"},           // Latin with Hangul
		{name: "שלום"},           // Hebrew, right to left
		{name: "guesthouse"},     // "guest" then a letter: not a guest's name
		{name: "memo"},           // not "me"
		{name: "admin"},          // an operator may create it
		{name: "admin", signup: true, want: "reserved for the site's staff"},
		{name: "Root", signup: true, want: "reserved for the site's staff"},
		{name: "ＡＬＩＣＥ", want: `use "ALICE"`},           // full width: not the standard form
		{name: "jose\u0301", want: "may contain only"}, // a combining accent (NormalizeUsername composes it first)
		{name: "alice\u3164", want: "may not use"},     // Hangul filler: invisible
		{name: "\u3164", want: "may not use"},
		{name: "\u212Aate", want: `standard form; use "Kate"`},            // Kelvin sign
		{name: "\uFB01sh", want: "characters that usernames may not use"}, // the ligature ﬁ
		{name: "аlice", want: "mixes the scripts Cyrillic, Latin"},        // Cyrillic а
		{name: "pаypal", want: "mixes the scripts"},
		{name: "ΑΒΓabc", want: "mixes the scripts Greek, Latin"},
		{name: "guest-1a2b3c", want: "reserved"},
		{name: "Guest-ABCDEF", want: "reserved"},
		{name: "guest", want: "reserved"},
		{name: "guest_1", want: "reserved"},
		{name: "gue5t-1a2b3c", want: ""}, // not a look-alike of guest: 5 is not s
		{name: "me", want: "reserved"},
		{name: "Me", want: "reserved"},
		{name: "ME", want: "reserved"},
		{name: "rne", want: "reserved"}, // r n reads as m
		{name: "someone", want: "reserved"},
		{name: "Anonymous", want: "reserved"},
		{name: "", want: "required"},
		{name: "alice smith", want: "may contain only"},
		{name: "a\u202Eb", want: "may contain only"}, // a right-to-left override
		{name: "..", want: "only dots"},
	} {
		validate := chat.ValidateUsername
		if tc.signup {
			validate = chat.ValidateSignupUsername
		}
		err := validate(tc.name)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.name, err)
		case tc.want != "" && (chat.ErrorCode(err) != chat.EINVALID || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q (signup %v): %v, want EINVALID with %q", tc.name, tc.signup, err, tc.want)
		}
	}
}

func TestUsernameKeyLookAlikes(t *testing.T) {
	same := [][2]string{
		{"alice", "ALICE"},
		{"alice", "ＡＬＩＣＥ"},             // width
		{"alice", "аlice"},             // Cyrillic а
		{"alice", "alice\u3164"},       // Hangul filler (only an old account can have it)
		{"alice", "ali\u200Bce"},       // zero-width space
		{"alice", "a\u202Elice"},       // an override
		{"bob", "b0b"},                 // digit zero
		{"modern", "rnodern"},          // r n reads as m
		{"user1", "userl"},             // one and l
		{"straße", "STRASSE"},          // full case folding
		{"σοφιας", "ΣΟΦΙΑΣ"},           // final sigma
		{"josé", "jose\u0301"},         // NFC
		{"kelvin", "\u212Aelvin"},      // Kelvin sign
		{"sam", "\u017Fam"},            // long s
		{"hat", "һаt"},                 // Cyrillic һ and а
		{"paypal", "\u0440\u0430ypal"}, // Cyrillic р and а
	}
	for _, p := range same {
		if a, b := chat.UsernameKey(p[0]), chat.UsernameKey(p[1]); a != b {
			t.Errorf("UsernameKey(%q) = %q, UsernameKey(%q) = %q; want equal", p[0], a, p[1], b)
		}
	}
	for _, p := range [][2]string{{"alice", "alicf"}, {"bob", "rob"}, {"anna", "hanna"}} {
		if chat.UsernameKey(p[0]) == chat.UsernameKey(p[1]) {
			t.Errorf("%q and %q share a key", p[0], p[1])
		}
	}
	if k := chat.UsernameKey("alice"); k != "alice" {
		t.Errorf("UsernameKey(alice) = %q, want it unchanged", k)
	}
	for _, name := range []string{"a|b", "ǀ", "∣", "｜"} {
		if k := chat.UsernameKey(name); strings.Contains(k, "|") {
			t.Errorf("UsernameKey(%q) = %q contains '|', which separates DM groups", name, k)
		}
	}
}

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{
		"ＡＬＩＣＥ":        "ALICE",
		"jose\u0301":   "josé",
		"alice":        "alice",
		"alice\u3164":  "alice\u3164", // cannot be normalized: left for ValidateUsername to refuse
		"ｇｕｅｓｔ－１ａ２ｂ３ｃ": "guest-1a2b3c",
	} {
		if got := chat.NormalizeUsername(in); got != want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", in, got, want)
		}
	}
	if err := chat.ValidateUsername(chat.NormalizeUsername("ｇｕｅｓｔ－１ａ２ｂ３ｃ")); chat.ErrorCode(err) != chat.EINVALID {
		t.Errorf("a full-width guest name normalizes to a valid username: %v", err)
	}
}

func TestRekeyUsernames(t *testing.T) {
	rows := []chat.UsernameRow{
		{ID: 1, Username: "alice", Key: "alice"},
		{ID: 2, Username: "Bob", Key: "bob"},
		{ID: 3, Username: "b0rn", Key: "b0rn"}, // old key; now "born"
		{ID: 4, Username: "Kate", Key: "kate"},
	}
	changed, err := chat.RekeyUsernames(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].ID != 3 || changed[0].Key != chat.UsernameKey("b0rn") {
		t.Errorf("changed = %+v, want only id 3 with its new key", changed)
	}
	// Accounts made before the rules that now collide stop the store.
	rows = append(rows,
		chat.UsernameRow{ID: 7, Username: "ａｌｉｃｅ", Key: "ａｌｉｃｅ"},
		chat.UsernameRow{ID: 8, Username: "bob\u3164", Key: "bob\u3164"},
	)
	_, err = chat.RekeyUsernames(rows)
	if chat.ErrorCode(err) != chat.EINVALID {
		t.Fatalf("collisions: %v, want EINVALID", err)
	}
	for _, want := range []string{`"alice" (id 1) and "ａｌｉｃｅ" (id 7)`, fmt.Sprintf("%q (id 2) and %q (id 8)", "Bob", "bob\u3164"), "UPDATE users"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestIsBidiControl(t *testing.T) {
	for _, r := range "\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069" {
		if !chat.IsBidiControl(r) {
			t.Errorf("U+%04X is a bidi control", r)
		}
	}
	for _, r := range "a\u200E\u200F\u2065\u2070" {
		if chat.IsBidiControl(r) {
			t.Errorf("U+%04X is not an explicit bidi control", r)
		}
	}
	for _, s := range []string{"Alice \u202Eevil", "x\u2066y"} {
		if chat.ErrorCode(chat.ValidateDisplayName(s)) != chat.EINVALID || chat.ErrorCode(chat.ValidateCourseTitle(s)) != chat.EINVALID {
			t.Errorf("%q is accepted as a display name or course title", s)
		}
	}
}
