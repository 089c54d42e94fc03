// Package chat holds chatd's domain types and the interfaces that the rest of
// the program implements: the channel layer (memory, redis) and the store
// (sqlite, postgres). It depends on the standard library, and for the
// username rules (username.go) on golang.org/x/text (RFC 8265 PRECIS) and
// github.com/mtibben/confusables (the UTS #39 skeleton): who is who must be
// decided by one function that every store and handler calls, and that
// function is the domain's.
//
// The layout follows the "standard package layout": this root package says
// what the program is about; each technology lives in its own subpackage
// (memory, redis, ws, web, ...) and only cmd/chatd knows every piece.
package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxRoomNameLen is the longest room name, counted in characters (runes).
const MaxRoomNameLen = 100

// ValidRoomName reports whether name may name a public room: 1 to
// MaxRoomNameLen characters, each a Unicode letter, a digit, '_', '-' or '.'.
// A name made only of dots is refused, so that "." and ".." never reach a
// URL where they would mean something else.
func ValidRoomName(name string) bool {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > MaxRoomNameLen {
		return false
	}
	if strings.Trim(name, ".") == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r == '_' || r == '-' || r == '.':
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return false
		}
	}
	return true
}
