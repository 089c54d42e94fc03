package ws

import "encoding/binary"

// WebSocket opcodes (RFC 6455 section 5.2) that the server writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// maxHeader is the longest header of an unmasked server frame.
const maxHeader = 10

// Server-to-client frames are never masked, so a frame's bytes are the same
// for every recipient. chatd therefore frames a broadcast once and hands the
// same byte slice to every connection's queue, and a connection's writer
// copies several queued frames into one write. gws frames every write itself
// and has no such shared-frame queue, which is why this one function (the
// header of an unmasked frame) is written here rather than taken from it.

// appendHeader appends the header of a final, unmasked frame of opcode op
// with a payload of n bytes.
func appendHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, 0x80|op, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, 0x80|op, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0x80|op, 127), uint64(n))
	}
}

// headerLen returns the length of the header appendHeader writes for n.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// frameFromPayload returns a frame of opcode op around payload, where
// payload was encoded after maxHeader bytes of reserved space at the start
// of buf (buf = reserved + payload). It moves no payload bytes: the header is
// written right before the payload, inside the reserved space.
func frameFromPayload(buf []byte, op byte) []byte {
	n := len(buf) - maxHeader
	start := maxHeader - headerLen(n)
	appendHeader(buf[start:start], op, n)
	return buf[start:]
}

// newFrame returns a new frame of opcode op carrying payload.
func newFrame(op byte, payload []byte) []byte {
	f := make([]byte, 0, headerLen(len(payload))+len(payload))
	return append(appendHeader(f, op, len(payload)), payload...)
}
