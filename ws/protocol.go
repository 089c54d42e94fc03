package ws

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Subprotocol is the WebSocket subprotocol that opts a client into chatd's
// extended frames (hello, and later acks, presence and typing). A client
// that does not ask for it – such as the Django Channels tutorials' pages,
// which read only data.message – gets chat_message frames and error frames
// only, and every chat_message frame has the fields those pages read.
const Subprotocol = "chatd.v1"

// TimeFormat is the format of the datetime field: ISO 8601 in UTC with
// milliseconds, which JavaScript's Date parses.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// MaxMessageLen is the longest chat message accepted, in characters.
const MaxMessageLen = 4000

// Error codes of error frames.
const (
	CodeInvalidJSON    = "invalid_json"
	CodeNotObject      = "not_object"
	CodeInvalidMessage = "invalid_message"
	CodeEmptyMessage   = "empty_message"
	CodeMessageTooLong = "message_too_long"
	CodeUnknownField   = "unknown_field"
	CodeUnknownType    = "unknown_type"
	CodeRateLimited    = "rate_limited"
	CodeUnavailable    = "unavailable"
)

// inbound is a frame sent by a client. Pointers tell absent from empty.
type inbound struct {
	Type    *string          `json:"type"`
	Message *json.RawMessage `json:"message"`
}

// frameError is a protocol error that is reported to the client in an error
// frame; the connection stays open.
type frameError struct {
	Code   string
	Detail string
}

func (e *frameError) Error() string { return e.Code + ": " + e.Detail }

// parseInbound validates a client's text frame and returns the chat message
// it carries. Room, user and time never come from the frame: they come from
// the URL, the session and the server clock.
func parseInbound(data []byte) (string, *frameError) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || !json.Valid(trimmed) {
		return "", &frameError{CodeInvalidJSON, "the frame is not valid JSON; send {\"message\": \"text\"}"}
	}
	if trimmed[0] != '{' {
		return "", &frameError{CodeNotObject, "the frame must be a JSON object like {\"message\": \"text\"}"}
	}
	var in inbound
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return "", &frameError{CodeUnknownField, "unknown field " + name + "; a message frame has only \"message\" (and optionally \"type\")"}
		}
		return "", &frameError{CodeInvalidJSON, "the frame could not be decoded: " + err.Error()}
	}
	if in.Type != nil && *in.Type != "chat_message" && *in.Type != "message" {
		return "", &frameError{CodeUnknownType, "unknown frame type " + strconv.Quote(*in.Type)}
	}
	if in.Message == nil {
		return "", &frameError{CodeInvalidMessage, "the \"message\" field is missing"}
	}
	var text string
	if err := json.Unmarshal(*in.Message, &text); err != nil {
		return "", &frameError{CodeInvalidMessage, "the \"message\" field must be a string"}
	}
	if strings.TrimSpace(text) == "" {
		return "", &frameError{CodeEmptyMessage, "the message is empty"}
	}
	if n := utf8.RuneCountInString(text); n > MaxMessageLen {
		return "", &frameError{CodeMessageTooLong, "the message is longer than the limit of " + strconv.Itoa(MaxMessageLen) + " characters"}
	}
	return text, nil
}

// ChatMessage is the frame every client receives for a chat message. The
// first fields are the ones the tutorials' pages read.
type ChatMessage struct {
	Type     string `json:"type"` // always "chat_message"
	Message  string `json:"message"`
	User     string `json:"user"`
	Datetime string `json:"datetime"`
	Room     string `json:"room"`
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
}

func newErrorFrame(code, detail string) []byte {
	f, err := encodeFrame(errorFrame{Type: "error", Code: code, Detail: detail, Message: "Error: " + detail})
	if err != nil {
		panic(err) // strings always encode
	}
	return f
}

// helloFrame tells a chatd.v1 client who it is and where.
type helloFrame struct {
	Type     string `json:"type"` // always "hello"
	User     string `json:"user"`
	Room     string `json:"room"`
	Protocol string `json:"protocol"`
	Echo     bool   `json:"echo"`
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
