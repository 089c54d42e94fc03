package ws

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	chat "github.com/chatd/chat"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		got := appendHeader(nil, opText, tc.n)
		if !bytes.Equal(got, tc.want) || len(got) != headerLen(tc.n) {
			t.Errorf("header for %d: % x, want % x", tc.n, got, tc.want)
		}
	}
}

func TestEncodeFramedInPlace(t *testing.T) {
	for _, size := range []int{0, 100, 200, 70000} {
		msg := ChatMessage{Type: "chat_message", Message: strings.Repeat("é<", size/3), User: "u", Datetime: "d", Room: "r"}
		buf, start, err := encodeFramed(msg, envHeader)
		if err != nil {
			t.Fatal(err)
		}
		if start < envHeader {
			t.Fatalf("frame starts at %d, before the headroom", start)
		}
		frame := buf[start:]
		payload, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		payload = bytes.ReplaceAll(payload, []byte(`\u003c`), []byte("<"))
		want := append(appendHeader(nil, opText, len(payload)), payload...)
		if !bytes.Equal(frame, want) {
			t.Fatalf("size %d: frame differs from header+JSON", size)
		}
	}
}

func TestEnvelope(t *testing.T) {
	env, err := envelope(kindChat, 7, 9, flagV1Only, 42, map[string]string{"message": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if env[0] != kindChat || binary.BigEndian.Uint64(env[1:9]) != 7 || binary.BigEndian.Uint64(env[9:17]) != 9 || env[17] != flagV1Only ||
		binary.BigEndian.Uint64(env[18:26]) != 42 {
		t.Fatalf("bad envelope header % x", env[:envHeader])
	}
	if want := newFrame(opText, []byte(`{"message":"x"}`)); !bytes.Equal(env[envHeader:], want) {
		t.Fatalf("frame % x, want % x", env[envHeader:], want)
	}
}

func TestParseInbound(t *testing.T) {
	for _, tc := range []struct {
		in, text, code string
		id             string
	}{
		{`{"message": "hi"}`, "hi", "", ""},
		{`{"type": "chat_message", "message": "hi", "id": "c-1"}`, "hi", "", "c-1"},
		{`{"message": "hi", "id": ""}`, "", CodeInvalidID, ""},
		{`{"message": "hi", "id": 7}`, "", CodeInvalidID, ""},
		{`{"message": "hi", "id": "tab\there"}`, "", CodeInvalidID, ""},
		{`{"message": "hi", "id": "é"}`, "", CodeInvalidID, ""},
		{`{"message": "hi", "id": "` + strings.Repeat("x", 65) + `"}`, "", CodeInvalidID, ""},
		{`{"message": "hi", "id": "` + strings.Repeat("x", 64) + `"}`, "hi", "", strings.Repeat("x", 64)},
		{`{"message": "", "id": "named"}`, "", CodeEmptyMessage, "named"},
		{` {"message": "  padded  "}`, "  padded  ", "", ""},
		{`{"type": "chat_message", "message": "typed"}`, "typed", "", ""},
		{`{"message": "<img src=x onerror=alert(1)>"}`, "<img src=x onerror=alert(1)>", "", ""},
		{`{"message": "\u00e9\ud83d\ude00"}`, "é😀", "", ""},
		{``, "", CodeInvalidJSON, ""},
		{`{"message": "x"} trailing`, "", CodeInvalidJSON, ""},
		{`{"message": "x"}{"message": "y"}`, "", CodeInvalidJSON, ""},
		{`null`, "", CodeNotObject, ""},
		{`42`, "", CodeNotObject, ""},
		{`{"Message": "x"}`, "x", "", ""}, // encoding/json matches field names case-insensitively
		{`{"message": true}`, "", CodeInvalidMessage, ""},
		{`{"message": ""}`, "", CodeEmptyMessage, ""},
		{`{"message": "x", "room": "other"}`, "", CodeUnknownField, ""},
		{`{"type": 1, "message": "x"}`, "", CodeInvalidJSON, ""},
		{`{"type": "typing", "message": "x"}`, "", CodeUnknownField, ""},
		{`{"type": "typing", "id": "a"}`, "", CodeUnknownField, "a"},
		{`{"type": "typing", "user": "mallory"}`, "", CodeUnknownField, ""},
		{`{"type": "join"}`, "", CodeUnknownType, ""},
		{`{"type": "presence"}`, "", CodeUnknownType, ""},
	} {
		text, id, typing, ferr := parseInbound([]byte(tc.in))
		if typing {
			t.Errorf("parseInbound(%q) reports a typing frame", tc.in)
		}
		code := ""
		if ferr != nil {
			code = ferr.Code
			if ferr.Detail == "" {
				t.Errorf("%q: error without detail", tc.in)
			}
		}
		if code != tc.code || text != tc.text || id != tc.id {
			t.Errorf("parseInbound(%q) = %q, %q, %q; want %q, %q, %q", tc.in, text, id, code, tc.text, tc.id, tc.code)
		}
	}
}

func TestParseTyping(t *testing.T) {
	for _, in := range []string{`{"type": "typing"}`, ` {"type":"typing"} `} {
		text, id, typing, ferr := parseInbound([]byte(in))
		if !typing || ferr != nil || text != "" || id != "" {
			t.Errorf("parseInbound(%q) = %q, %q, %v, %v; want a typing frame", in, text, id, typing, ferr)
		}
	}
}

func TestCloseReasonFits(t *testing.T) {
	for _, in := range []string{strings.Repeat("é", 100), strings.Repeat("x", 200), "short", strings.Repeat("日", 50)} {
		r := closeReason(in)
		if len(r)+2 > 125 || !utf8.ValidString(r) || !strings.HasPrefix(in, r) {
			t.Errorf("closeReason(%d bytes) = %d bytes, valid UTF-8 %v", len(in), len(r), utf8.ValidString(r))
		}
	}
	if r := closeReason("logged out"); r != "logged out" {
		t.Errorf("a short reason changed: %q", r)
	}
}

// FuzzParseInbound checks that no input crashes the decoder and that an
// accepted message is non-blank, valid UTF-8 and within the limit.
func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{`{"message": "hi"}`, `{}`, `[]`, `{"message": 1}`, `{"type":"message","message":"x"}`, `{"type":"typing"}`, "\xff", `{"message": "\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text, _, typing, ferr := parseInbound(data)
		if typing {
			if ferr != nil || text != "" {
				t.Fatalf("typing frame with %q, %v", text, ferr)
			}
			return
		}
		if ferr != nil {
			if ferr.Code == "" || ferr.Detail == "" {
				t.Fatalf("error without code or detail: %+v", ferr)
			}
			return
		}
		if strings.TrimSpace(text) == "" || utf8.RuneCountInString(text) > MaxMessageLen {
			t.Fatalf("accepted %q", text)
		}
		if !utf8.ValidString(text) {
			// encoding/json replaces invalid bytes with U+FFFD, so this
			// never happens; gws rejects invalid UTF-8 frames before.
			t.Fatalf("accepted invalid UTF-8 %q", text)
		}
	})
}

// TestChatMessageName: a message's display name travels as "name", beside
// the username in "user" (the identity, which tutorial pages read), and is
// left out when the sender had none.
func TestChatMessageName(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 0, 0, 123e6, time.UTC)
	for _, tc := range []struct {
		name string
		want string
	}{
		{"Alice Liddell", `{"type":"chat_message","message":"hi","user":"alice","datetime":"2026-11-22T03:00:00.123Z","room":"lobby","seq":3,"name":"Alice Liddell"}`},
		{"", `{"type":"chat_message","message":"hi","user":"alice","datetime":"2026-11-22T03:00:00.123Z","room":"lobby","seq":3}`},
	} {
		f, err := json.Marshal(ChatMessageOf(&chat.Message{Room: "chat:lobby", Seq: 3, UserID: 1, User: "alice", Name: tc.name, Text: "hi", Time: at}))
		if err != nil || string(f) != tc.want {
			t.Errorf("frame = %s, %v\nwant %s", f, err, tc.want)
		}
	}
}
