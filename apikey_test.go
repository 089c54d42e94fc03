package chat

import "testing"

func TestRoomPatterns(t *testing.T) {
	for _, tc := range []struct {
		in, norm string
		match    []string
		miss     []string
	}{
		{"chat:*", "chat:*", []string{"chat:lobby", "chat:a.b-c_d", "chat:café"}, []string{"course:1", "dm:1:2", "chat"}},
		{" chat:announce-* ,course:12", "chat:announce-*,course:12",
			[]string{"chat:announce-", "chat:announce-all", "course:12"}, []string{"chat:announce", "course:1", "course:123", "chat:lobby"}},
		{"course:1?", "course:1?", []string{"course:10", "course:19"}, []string{"course:1", "course:100"}},
		{"course:[12]", "course:[12]", []string{"course:1", "course:2"}, []string{"course:3"}},
		{"dm:*", "dm:*", []string{"dm:1:2"}, []string{"chat:dm"}},
		{"*", "*", []string{"chat:x", "course:1", "dm:3:4"}, nil},
		{"chat:lobby,,chat:lobby", "chat:lobby,chat:lobby", []string{"chat:lobby"}, []string{"chat:lobby2"}},
	} {
		got, err := NormalizeRoomPatterns(tc.in)
		if err != nil || got != tc.norm {
			t.Errorf("NormalizeRoomPatterns(%q) = %q, %v; want %q", tc.in, got, err, tc.norm)
			continue
		}
		for _, r := range tc.match {
			if !MatchRooms(got, r) {
				t.Errorf("%q does not match %q", got, r)
			}
		}
		for _, r := range tc.miss {
			if MatchRooms(got, r) {
				t.Errorf("%q matches %q", got, r)
			}
		}
	}
	for _, bad := range []string{"", ",", "lobby", "Chat:x", "chat:[", "chat:x\\", "chat:a b", "chat:\tx", "course"} {
		if got, err := NormalizeRoomPatterns(bad); ErrorCode(err) != EINVALID {
			t.Errorf("NormalizeRoomPatterns(%q) = %q, %v; want EINVALID", bad, got, err)
		}
	}
}

func TestBotNames(t *testing.T) {
	if BotUser("news") != "bot:news" {
		t.Fatal(BotUser("news"))
	}
	// A bot's shown name is never a valid username, so no account (and no
	// guest, whose names are "guest-" and hex digits) can be a bot.
	if ValidateUsername(BotUser("news")) == nil {
		t.Fatal("bot:news is a valid username")
	}
	for _, ok := range []string{"news", "a.b+c-d_e@f", "ünï"} {
		if err := ValidateBotName(ok); err != nil {
			t.Errorf("ValidateBotName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "bot:x", "a b", "..", "x\x00"} {
		if ErrorCode(ValidateBotName(bad)) != EINVALID || ErrorCode(ValidateKeyName(bad)) != EINVALID {
			t.Errorf("%q accepted as a bot or key name", bad)
		}
	}
}

func TestAPIKeySecret(t *testing.T) {
	s1, p1, h1, err := NewAPIKeySecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _, _ := NewAPIKeySecret()
	if s1 == s2 || len(s1) != len(APIKeySecretPrefix)+43 || p1 != s1[:len(p1)] || string(h1) != string(HashAPIKey(s1)) {
		t.Fatalf("secrets %q %q prefix %q", s1, s2, p1)
	}
}
