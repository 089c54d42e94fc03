package ws

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
)

// Subprotocol is the WebSocket subprotocol that opts a client into chatd's
// extended frames (hello, acks, presence, join and leave, typing). A client
// that does not ask for it – such as the Django Channels tutorials' pages,
// which read only data.message – gets chat_message frames and error frames
// only, and every chat_message frame has the fields those pages read.
const Subprotocol = "chatd.v1"

// TimeFormat is the format of the datetime field: ISO 8601 in UTC with
// milliseconds, which JavaScript's Date parses.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// MaxMessageLen is the longest chat message accepted, in characters.
const MaxMessageLen = core.MaxMessageLen

// Error codes of error frames.
const (
	CodeInvalidJSON    = "invalid_json"
	CodeNotObject      = "not_object"
	CodeInvalidMessage = "invalid_message"
	CodeEmptyMessage   = core.CodeEmptyMessage
	CodeMessageTooLong = core.CodeMessageTooLong
	CodeInvalidID      = core.CodeInvalidID
	CodeUnknownField   = "unknown_field"
	CodeUnknownType    = "unknown_type"
	CodeRateLimited    = "rate_limited"
	CodeUnavailable    = "unavailable"
)

// inbound is a frame sent by a client. Pointers tell absent from empty.
type inbound struct {
	Type    *string          `json:"type"`
	Message *json.RawMessage `json:"message"`
	ID      *json.RawMessage `json:"id"`
}

// frameError is a protocol error that is reported to the client in an error
// frame; the connection stays open.
type frameError struct {
	Code   string
	Detail string
}

func (e *frameError) Error() string { return e.Code + ": " + e.Detail }

// parseInbound validates a client's text frame and returns the chat message
// it carries and the client's id for it ("" if none), or typing true for a
// typing frame ({"type": "typing"}, nothing else). Room, user and time
// never come from the frame: they come from the URL, the session and the
// server clock. An error names the id when the frame had a valid one, so
// the client knows which of its messages was refused.
func parseInbound(data []byte) (text, id string, typing bool, ferr *frameError) {
	text, id, ferr = parseMessage(data, &typing)
	return text, id, typing, ferr
}

func parseMessage(data []byte, typing *bool) (text, id string, ferr *frameError) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || !json.Valid(trimmed) {
		return "", "", &frameError{CodeInvalidJSON, "the frame is not valid JSON; send {\"message\": \"text\"}"}
	}
	if trimmed[0] != '{' {
		return "", "", &frameError{CodeNotObject, "the frame must be a JSON object like {\"message\": \"text\"}"}
	}
	var in inbound
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return "", "", &frameError{CodeUnknownField, "unknown field " + name + "; a message frame has only \"message\" (and optionally \"type\" and \"id\")"}
		}
		return "", "", &frameError{CodeInvalidJSON, "the frame could not be decoded: " + err.Error()}
	}
	if in.ID != nil {
		if err := json.Unmarshal(*in.ID, &id); err != nil {
			return "", "", &frameError{CodeInvalidID, "the \"id\" field must be a string of 1 to 64 printable ASCII characters"}
		}
		if inv := core.CheckClientID(id); inv != nil {
			return "", "", &frameError{inv.Code, inv.Detail}
		}
	}
	if in.Type != nil && *in.Type == "typing" {
		if in.Message != nil || in.ID != nil {
			return "", id, &frameError{CodeUnknownField, "a typing frame is only {\"type\": \"typing\"}"}
		}
		*typing = true
		return "", "", nil
	}
	if in.Type != nil && *in.Type != "chat_message" && *in.Type != "message" {
		return "", id, &frameError{CodeUnknownType, "unknown frame type " + strconv.Quote(*in.Type) + "; a client sends \"chat_message\" (the default) or \"typing\""}
	}
	if in.Message == nil {
		return "", id, &frameError{CodeInvalidMessage, "the \"message\" field is missing"}
	}
	if err := json.Unmarshal(*in.Message, &text); err != nil {
		return "", id, &frameError{CodeInvalidMessage, "the \"message\" field must be a string"}
	}
	if inv := core.CheckText(text); inv != nil {
		return "", id, &frameError{inv.Code, inv.Detail}
	}
	return text, id, nil
}

// ChatMessage is the frame every client receives for a chat message. The
// first fields are the ones the tutorials' pages read.
type ChatMessage struct {
	Type     string `json:"type"` // always "chat_message"
	Message  string `json:"message"`
	User     string `json:"user"`
	Datetime string `json:"datetime"`
	Room     string `json:"room"`
	Seq      int64  `json:"seq,omitempty"` // the message's place in its room (history on)
	ID       string `json:"id,omitempty"`  // the sender's id for it, if it gave one
	// Name is the sender's display name when it wrote the message (a
	// guest's nickname), if it had one; User stays the identity.
	Name string `json:"name,omitempty"`
}

// ChatMessageOf returns the frame of a stored message, as the history API
// lists it.
func ChatMessageOf(m *chat.Message) ChatMessage { return chatMessage(m) }

// chatMessage returns the frame of a message.
func chatMessage(m *chat.Message) ChatMessage {
	return ChatMessage{Type: "chat_message", Message: m.Text, User: m.User, Datetime: formatTime(m.Time),
		Room: roomTag(m.Room), Seq: m.Seq, ID: m.ClientID, Name: m.Name}
}

// ackFrame tells a chatd.v1 client that its message with ID was stored as
// Seq (0 with history off: accepted and relayed, not stored).
type ackFrame struct {
	Type string `json:"type"` // always "ack"
	ID   string `json:"id"`
	Seq  int64  `json:"seq,omitempty"`
}

// historyFrame tells a resuming client that messages after After were
// removed by retention: history now starts at First.
type historyFrame struct {
	Type  string `json:"type"` // "history_truncated"
	After int64  `json:"after"`
	First int64  `json:"first"`
}

// mustFrame encodes a frame of chatd's own, which always encodes.
func mustFrame(v any) []byte {
	f, err := encodeFrame(v)
	if err != nil {
		panic(err)
	}
	return f
}

// encodeFramed encodes v as JSON into a new buffer that starts with
// headroom+maxHeader reserved bytes and frames it in place as a text frame.
// It returns the buffer and the offset where the frame starts; at least
// headroom bytes before that offset are free for an envelope header. HTML
// characters are not escaped: clients render text, not HTML.
func encodeFramed(v any, headroom int) (buf []byte, start int, err error) {
	var b bytes.Buffer
	b.Grow(headroom + maxHeader + 192)
	b.Write(make([]byte, headroom+maxHeader))
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, 0, err
	}
	buf = b.Bytes()
	buf = buf[:len(buf)-1] // Encode's trailing newline
	frame := frameFromPayload(buf[headroom:], opText)
	return buf, len(buf) - len(frame), nil
}

// encodeFrame returns v as a text frame of its own.
func encodeFrame(v any) ([]byte, error) {
	buf, start, err := encodeFramed(v, 0)
	if err != nil {
		return nil, err
	}
	return buf[start:], nil
}

// errorFrame is sent to one client whose frame was refused. It carries a
// "message" too, so a tutorial page that prints data.message shows the
// reason instead of "undefined".
type errorFrame struct {
	Type    string `json:"type"` // always "error"
	Code    string `json:"code"`
	Detail  string `json:"detail"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"` // the refused message's id, if it had one
}

func newErrorFrame(code, detail, id string) []byte {
	return mustFrame(errorFrame{Type: "error", Code: code, Detail: detail, Message: "Error: " + detail, ID: id})
}

// helloFrame tells a chatd.v1 client who it is and where.
type helloFrame struct {
	Type     string `json:"type"` // always "hello"
	User     string `json:"user"`
	Name     string `json:"name,omitempty"` // the display name its messages carry
	Room     string `json:"room"`
	Protocol string `json:"protocol"`
	Echo     bool   `json:"echo"`
	History  bool   `json:"history"`  // messages are stored: acks carry a seq, ?after= resumes
	Presence bool   `json:"presence"` // presence, join, leave and typing frames follow
}

// formatTime formats t as the datetime field.
func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// closeReason cuts reason to fit a close frame (125 bytes with the 2-byte
// code) without splitting a character: gws cuts at the byte limit, and a
// close reason that is not valid UTF-8 makes browsers fail the connection
// instead of closing it cleanly.
func closeReason(reason string) string {
	for len(reason) > 123 {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	return reason
}
