package chat_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
)

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Alice.Smith+chat@example-school_1", true},
		{"élève", true},
		{"学生", true},
		{"a", true},
		{strings.Repeat("a", chat.MaxUsernameLen), true},
		{"a.b", true},
		{".alice", true},
		{"", false},
		{strings.Repeat("a", chat.MaxUsernameLen+1), false},
		{"alice smith", false},
		{"alice/bob", false},
		{"alice\n", false},
		{"<script>", false},
		{"a%2e", false},
		{".", false},
		{"..", false},
		{"...", false},
		{"bad\xffutf8", false},
		{"e\u0301", false}, // a combining mark is not a letter
	}
	for _, tt := range tests {
		err := chat.ValidateUsername(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidateUsername(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && chat.ErrorCode(err) != chat.EINVALID {
			t.Errorf("ValidateUsername(%q) = %v, want code %s", tt.name, err, chat.EINVALID)
		}
	}
}

func TestUsernameKey(t *testing.T) {
	same := [][2]string{
		{"alice", "ALICE"},
		{"Alice", "aLiCe"},
		{"ÉLÈVE", "élève"},
		{"kelvin", "\u212Aelvin"}, // Kelvin sign
		{"sam", "\u017Fam"},       // long s
		{"ΣΟΦΙΑ", "σοφια"},
	}
	for _, p := range same {
		if a, b := chat.UsernameKey(p[0]), chat.UsernameKey(p[1]); a != b {
			t.Errorf("UsernameKey(%q) = %q, UsernameKey(%q) = %q; want equal", p[0], a, p[1], b)
		}
	}
	if chat.UsernameKey("alice") != "alice" {
		t.Errorf("UsernameKey(alice) = %q, want it unchanged", chat.UsernameKey("alice"))
	}
	if chat.UsernameKey("alice") == chat.UsernameKey("alicf") {
		t.Error("different names share a key")
	}
}

func TestValidateCourseTitleAndDisplayName(t *testing.T) {
	for _, title := range []string{"Django 101", "Éducation", strings.Repeat("x", chat.MaxCourseTitleLen)} {
		if err := chat.ValidateCourseTitle(title); err != nil {
			t.Errorf("ValidateCourseTitle(%q) = %v", title, err)
		}
	}
	for _, title := range []string{"", "   ", "a\tb", "bad\xff", strings.Repeat("x", chat.MaxCourseTitleLen+1)} {
		if code := chat.ErrorCode(chat.ValidateCourseTitle(title)); code != chat.EINVALID {
			t.Errorf("ValidateCourseTitle(%q) code = %q, want %q", title, code, chat.EINVALID)
		}
	}
	for _, name := range []string{"", "Alice Smith", "Zoë 🎓"} {
		if err := chat.ValidateDisplayName(name); err != nil {
			t.Errorf("ValidateDisplayName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"a\x00b", "line\nbreak", strings.Repeat("x", chat.MaxDisplayNameLen+1)} {
		if code := chat.ErrorCode(chat.ValidateDisplayName(name)); code != chat.EINVALID {
			t.Errorf("ValidateDisplayName(%q) code = %q, want %q", name, code, chat.EINVALID)
		}
	}
}

func TestNewSessionToken(t *testing.T) {
	tok, hash, err := chat.NewSessionToken()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q: %d bytes, %v; want 32 bytes of URL-safe base64", tok, len(raw), err)
	}
	if !bytes.Equal(hash, chat.HashSessionToken(tok)) || len(hash) != 32 {
		t.Fatalf("hash %x does not match HashSessionToken", hash)
	}
	tok2, hash2, _ := chat.NewSessionToken()
	if tok2 == tok || bytes.Equal(hash, hash2) {
		t.Fatal("two tokens are equal")
	}
}
