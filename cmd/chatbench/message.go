package main

import (
	"bytes"
	"strconv"
)

// The text chatbench sends in {"message": "..."} is
//
//	cb|<run>|<room>|<sender>|<seq>|<unix-nanos>|<padding>
//
// run is the run id (hex), room the room index, sender the sender's index
// within its room, seq the sender's sequence number starting at 0, and the
// send time in Unix nanoseconds. The padding is 'x' up to the -size bytes.
// Only characters that JSON never escapes are used, so the text can be read
// back from the server's frame without a JSON decoder.
const msgPrefix = "cb|"

// appendMessage appends the JSON frame {"message":"<text>"} with the text
// padded to size bytes to b.
func appendMessage(b []byte, run string, room, sender int, seq uint64, ns int64, size int) []byte {
	b = append(b, `{"message":"`...)
	start := len(b)
	b = append(b, msgPrefix...)
	b = append(b, run...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(room), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, '|')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, ns, 10)
	b = append(b, '|')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// msgFields are the fields of one received chatbench message.
type msgFields struct {
	run    []byte // aliases the frame
	room   int
	sender int
	seq    uint64
	ns     int64
}

var messageKey = []byte(`"message":`)

// parseFrame finds the "message" field of a JSON text frame and parses the
// chatbench text in it. It accepts both chatd's compact JSON and Python's
// `"message": "..."` spacing. ok is false for frames that do not carry a
// chatbench message (other frame types, other clients' messages). It does
// not allocate.
func parseFrame(frame []byte) (m msgFields, ok bool) {
	i := bytes.Index(frame, messageKey)
	if i < 0 {
		return m, false
	}
	p := frame[i+len(messageKey):]
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r') {
		p = p[1:]
	}
	if len(p) < 1+len(msgPrefix) || p[0] != '"' || string(p[1:1+len(msgPrefix)]) != msgPrefix {
		return m, false
	}
	p = p[1+len(msgPrefix):]
	j := bytes.IndexByte(p, '|')
	if j <= 0 {
		return m, false
	}
	m.run, p = p[:j], p[j+1:]
	var n uint64
	if n, p, ok = parseUint(p); !ok {
		return m, false
	}
	m.room = int(n)
	if n, p, ok = parseUint(p); !ok {
		return m, false
	}
	m.sender = int(n)
	if m.seq, p, ok = parseUint(p); !ok {
		return m, false
	}
	if n, _, ok = parseUint(p); !ok {
		return m, false
	}
	m.ns = int64(n)
	return m, true
}

// parseUint parses decimal digits up to a '|' and returns the rest after it.
func parseUint(p []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		if i >= 19 {
			return 0, nil, false
		}
		v = v*10 + uint64(p[i]-'0')
	}
	if i == 0 || i >= len(p) || p[i] != '|' {
		return 0, nil, false
	}
	return v, p[i+1:], true
}
