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

// appendMessageID is appendMessage with a client message id (chatd.v1):
// {"message":"<text>","id":"<run>.<sender>.<seq>.<unix-nanos>"}. chatd acks
// the id once the message is stored; the id carries what the ack's
// receiver needs (the sender and the send time), so acks need no table.
// Run and sender make it unique within the room, as chatd requires (it
// stores a retried id once).
func appendMessageID(b []byte, run string, room, sender int, seq uint64, ns int64, size int) []byte {
	b = appendMessage(b, run, room, sender, seq, ns, size)
	b = b[:len(b)-1] // the closing brace
	b = append(b, `,"id":"`...)
	b = append(b, run...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, ns, 10)
	return append(b, `"}`...)
}

// ackFields are the fields of a chatd ack frame for a chatbench message.
type ackFields struct {
	run    []byte // aliases the frame
	sender int
	seq    uint64 // the sender's sequence number, from the id
	ns     int64  // send time, from the id
	room   int64  // the room's seq the message was stored as; 0: not stored
}

var (
	ackPrefix = []byte(`{"type":"ack",`)
	idKey     = []byte(`"id":"`)
	seqKey    = []byte(`"seq":`)
)

// parseAck parses chatd's {"type":"ack","id":"<run>.<sender>.<seq>.<ns>","seq":N}
// ("seq" is absent with HISTORY=off, where room is then 0).
// ok is false for anything else (an ack of an id chatbench did not make).
func parseAck(frame []byte) (a ackFields, ok bool) {
	if !bytes.HasPrefix(frame, ackPrefix) {
		return a, false
	}
	id, ok := parseID(frame)
	if !ok {
		return a, false
	}
	a.run, a.sender, a.seq, a.ns = id.run, id.sender, id.seq, id.ns
	a.room, _ = parseSeq(frame) // none with HISTORY=off: relayed, not stored
	return a, true
}

// parseID parses the "id" field of a frame as chatbench's id.
func parseID(frame []byte) (a ackFields, ok bool) {
	i := bytes.Index(frame, idKey)
	if i < 0 {
		return a, false
	}
	p := frame[i+len(idKey):]
	j := bytes.IndexByte(p, '.')
	if j <= 0 {
		return a, false
	}
	a.run, p = p[:j], p[j+1:]
	var n uint64
	if n, p, ok = parseUintSep(p, '.'); !ok {
		return a, false
	}
	a.sender = int(n)
	if a.seq, p, ok = parseUintSep(p, '.'); !ok {
		return a, false
	}
	if n, _, ok = parseUintSep(p, '"'); !ok {
		return a, false
	}
	a.ns = int64(n)
	return a, true
}

// parseSeq finds the "seq" field (chatd with history on: the message's
// place in its room) in p and parses it. A JSON string cannot hold `"seq":`
// unescaped, so the first match is the field.
func parseSeq(p []byte) (int64, bool) {
	i := bytes.Index(p, seqKey)
	if i < 0 {
		return 0, false
	}
	p = p[i+len(seqKey):]
	var v int64
	k := 0
	for ; k < len(p) && k < 19 && p[k] >= '0' && p[k] <= '9'; k++ {
		v = v*10 + int64(p[k]-'0')
	}
	if k == 0 || k == 19 {
		return 0, false
	}
	return v, true
}

// msgFields are the fields of one received chatbench message.
type msgFields struct {
	run    []byte // aliases the frame
	room   int
	sender int
	seq    uint64
	ns     int64
	rest   []byte // the frame after the send time (padding, then chatd's other fields)
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
	if n, p, ok = parseUint(p); !ok {
		return m, false
	}
	m.ns = int64(n)
	m.rest = p
	return m, true
}

// parseUint parses decimal digits up to a '|' and returns the rest after it.
func parseUint(p []byte) (v uint64, rest []byte, ok bool) { return parseUintSep(p, '|') }

// parseUintSep parses decimal digits up to sep and returns the rest after it.
func parseUintSep(p []byte, sep byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		if i >= 19 {
			return 0, nil, false
		}
		v = v*10 + uint64(p[i]-'0')
	}
	if i == 0 || i >= len(p) || p[i] != sep {
		return 0, nil, false
	}
	return v, p[i+1:], true
}
