package channelsredis

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// A token made by Python's cryptography.fernet with the key channels_redis
// derives from "chatd-test-key", at 1795971934, of
// msgpack({"type": "chat_message", "message": "héllo", "n": 3}).
const pythonToken = "gAAAAABrDFtePIBPLgnutg2UYhSeo-cblSTyOlSbGAKB0V3-wn_-tKngdbN1f6cbWcj_YVgtGkiQg5AGfk45-LTRro1N7aVzuY5enXGJcEP1Ly-XEyLiyVH3seBTKc0cES8U0243Jz_Q"

func TestFernetReadsPythonTokens(t *testing.T) {
	made := time.Unix(1795971934, 0)
	c := &codec{keys: []fernetKey{newFernetKey("other"), newFernetKey("chatd-test-key")}, ttl: 70 * time.Second, now: func() time.Time { return made.Add(30 * time.Second) }}
	ev, chans, err := c.decode([]byte(pythonToken), false)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type() != "chat_message" || ev["message"] != "héllo" || chans != nil {
		t.Errorf("decoded %v %v", ev, chans)
	}
	// Too old (Fernet ttl = expiry + 10 s), a wrong key, a changed byte.
	c.now = func() time.Time { return made.Add(71 * time.Second) }
	if _, _, err := c.decode([]byte(pythonToken), false); err == nil {
		t.Error("expired token accepted")
	}
	c.now = func() time.Time { return made }
	c.keys = []fernetKey{newFernetKey("wrong")}
	if _, _, err := c.decode([]byte(pythonToken), false); err == nil {
		t.Error("token accepted with the wrong key")
	}
	c.keys = []fernetKey{newFernetKey("chatd-test-key")}
	bad := []byte(pythonToken)
	bad[40] ^= 1
	if _, _, err := c.decode(bad, false); err == nil {
		t.Error("tampered token accepted")
	}
}

func TestEncodeMatchesChannelsRedis(t *testing.T) {
	c := &codec{prefixLen: 12, now: time.Now}
	// The pub/sub payload observed in MONITOR (django-interop.md §3).
	got, err := c.encode([]Field{{"type", "chat_message"}, {"message", "hello from ws A"}}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("82a474797065ac636861745f6d657373616765a76d657373616765af68656c6c6f2066726f6d2077732041")
	if !bytes.Equal(got, want) {
		t.Errorf("pubsub payload\n got %x\nwant %x", got, want)
	}
	// The core member: 12 random bytes, then a map of 3 with
	// __asgi_channel__ last, as an array of str8 names.
	names := []string{"specific.aa4147dc61d7453cbd78c5658e77913c!7ac89f5ab0e74d209ba91bb9ada0c449", "specific.aa4147dc61d7453cbd78c5658e77913c!9229af"}
	got, err = c.encode([]Field{{"type", "chat_message"}, {"message", "hello from ws A"}}, names, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 12 || got[12] != 0x83 || !bytes.Contains(got, []byte("\xb0__asgi_channel__\x92\xd9\x4aspecific.aa41")) {
		t.Errorf("core member %x", got)
	}
	ev, chans, err := c.decode(got, true)
	if err != nil || ev["message"] != "hello from ws A" || len(chans) != 2 || chans[1] != names[1] {
		t.Errorf("round trip: %v %v %v", ev, chans, err)
	}
	if _, ok := ev[channelKey]; ok {
		t.Error("__asgi_channel__ left in the event")
	}
}

func TestEncryptedAndJSONRoundTrip(t *testing.T) {
	for _, c := range []*codec{
		{prefixLen: 12, keys: []fernetKey{newFernetKey("k1")}, ttl: 70 * time.Second, now: time.Now},
		{prefixLen: 12, json: true, now: time.Now},
		{json: true, keys: []fernetKey{newFernetKey("k1")}, ttl: 70 * time.Second, now: time.Now},
	} {
		b, err := c.encode([]Field{{"type", "chat.message"}, {"message", "ü €"}, {"seq", int64(7)}, {"ok", true}}, "specific.x!y", c.prefixLen > 0)
		if err != nil {
			t.Fatal(err)
		}
		ev, chans, err := c.decode(b, c.prefixLen > 0)
		if err != nil {
			t.Fatalf("json=%v keys=%d: %v", c.json, len(c.keys), err)
		}
		if ev["message"] != "ü €" || ev.Type() != "chat.message" || len(chans) != 1 || chans[0] != "specific.x!y" {
			t.Errorf("json=%v: %v %v", c.json, ev, chans)
		}
		if c.json && c.keys == nil && b[12] != '{' {
			t.Errorf("json body does not start with {: %q", b[12:])
		}
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	c := &codec{prefixLen: 12, now: time.Now}
	for _, b := range [][]byte{nil, []byte("short"), append(make([]byte, 12), 0xc1), append(make([]byte, 12), 0x93, 1, 2, 3)} {
		if _, _, err := c.decode(b, true); err == nil {
			t.Errorf("decoded %x", b)
		}
	}
}

func TestNames(t *testing.T) {
	// channels_redis's _consistent_hash (django-interop.md §2.8).
	if s := shard("chat_lobby", 2); s != 1 {
		t.Errorf("shard(chat_lobby, 2) = %d, want 1", s)
	}
	if s := shard("asgi__group__chat_lobby", 2); s != 0 {
		t.Errorf("shard(asgi__group__chat_lobby, 2) = %d, want 0", s)
	}
	if s := shard("anything", 1); s != 0 {
		t.Errorf("one host: %d", s)
	}
	p, err := ParseGroupPattern(DefaultGroupPattern)
	if err != nil {
		t.Fatal(err)
	}
	long := string(bytes.Repeat([]byte("a"), 94))
	for room, ok := range map[string]bool{"lobby": true, "a.b-c_D9": true, long: true, long + "a": false, "café": false, "chat lobby": false, "x:y": false} {
		g, valid := p.Group(room)
		if valid != ok || (p.CheckRoom(room) == nil) != ok {
			t.Errorf("room %q: group %q valid %v, want %v", room, g, valid, ok)
		}
		if r, _ := p.Room(g); r != room {
			t.Errorf("Room(%q) = %q", g, r)
		}
	}
	for _, bad := range []string{"chat_", "{room}{room}", "chat {room}", "chat_{room}_é"} {
		if _, err := ParseGroupPattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
	if !isChatType("chat.message") || !isChatType("chat_message") || isChatType("user.join") {
		t.Error("isChatType")
	}
	if nonLocal("specific.abc!def") != "specific.abc!" || nonLocal("general") != "general" {
		t.Error("nonLocal")
	}
}
