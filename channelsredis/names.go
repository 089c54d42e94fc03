package channelsredis

import (
	"fmt"
	"hash/crc32"
	"net/url"
	"strings"
)

// MaxNameLen is one more than the longest group or channel name Channels
// accepts: names must be shorter than 100 characters.
const MaxNameLen = 100

// ValidGroupName reports whether Channels' BaseChannelLayer accepts name as
// a group name: ASCII letters, digits, '-', '_' and '.', fewer than 100.
// (The pub/sub layer checks nothing, but a Django project may switch
// layers; chatd holds both to the stricter rule.)
func ValidGroupName(name string) bool {
	if len(name) == 0 || len(name) >= MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// GroupPattern maps a public room's name to its Django group name: the
// pattern with "{room}" replaced, "chat_{room}" in the tutorials.
type GroupPattern struct {
	before, after string
	set           bool // made by a Parse function (the zero value is no pattern)
}

// DefaultGroupPattern is the tutorials' group name.
const DefaultGroupPattern = "chat_{room}"

// DefaultCourseGroupPattern is the educa tutorial's group of a course's
// chat room.
const DefaultCourseGroupPattern = "chat_{course}"

// ParseGroupPattern checks a public room's pattern: it must contain
// "{room}" once, and the rest must be valid in a group name.
func ParseGroupPattern(p string) (GroupPattern, error) {
	return parsePattern(p, "{room}", DefaultGroupPattern)
}

// ParseCourseGroupPattern checks a course room's pattern: it must contain
// "{course}" (the course's id) once, and the rest must be valid in a group
// name.
func ParseCourseGroupPattern(p string) (GroupPattern, error) {
	return parsePattern(p, "{course}", DefaultCourseGroupPattern)
}

func parsePattern(p, placeholder, example string) (GroupPattern, error) {
	before, after, ok := strings.Cut(p, placeholder)
	if !ok || strings.Contains(after, placeholder) {
		return GroupPattern{}, fmt.Errorf("channelsredis: group pattern %q must contain %s exactly once (e.g. %s)", p, placeholder, example)
	}
	if !ValidGroupName(before+"x"+after) || len(before)+len(after) > MaxNameLen-2 {
		return GroupPattern{}, fmt.Errorf("channelsredis: group pattern %q: outside %s only ASCII letters, digits, '-', '_' and '.' may appear", p, placeholder)
	}
	return GroupPattern{before: before, after: after, set: true}, nil
}

// IsZero reports whether g is the zero GroupPattern (no pattern).
func (g GroupPattern) IsZero() bool { return !g.set }

// Group returns room's Django group name and whether it is a valid one.
func (g GroupPattern) Group(room string) (string, bool) {
	name := g.before + room + g.after
	return name, ValidGroupName(name)
}

// Room returns the room whose group is name, if name fits the pattern.
func (g GroupPattern) Room(name string) (string, bool) {
	if len(name) <= len(g.before)+len(g.after) || !strings.HasPrefix(name, g.before) || !strings.HasSuffix(name, g.after) {
		return "", false
	}
	return name[len(g.before) : len(name)-len(g.after)], true
}

// CheckRoom returns an error saying why room cannot be a public room while
// chatd speaks channels_redis, or nil if it can.
func (g GroupPattern) CheckRoom(room string) error {
	if _, ok := g.Group(room); ok {
		return nil
	}
	max := MaxNameLen - 1 - len(g.before) - len(g.after)
	return fmt.Errorf("this server shares its rooms with a Django Channels site, whose group names allow only ASCII letters, digits, '-', '_' and '.', at most %d characters in a room name", max)
}

// shard returns which of n hosts holds value, as channels_redis's
// _consistent_hash does: crc32 of the UTF-8 bytes, its low 12 bits, spread
// over n equal ranges of 4096.
func shard(value string, n int) int {
	if n <= 1 {
		return 0
	}
	v := crc32.ChecksumIEEE([]byte(value)) & 0xFFF
	return int(float64(v) / (4096.0 / float64(n)))
}

// nonLocal returns a channel name up to and including its first '!' (the
// whole name when it has none): the part that names the process inbox.
func nonLocal(channel string) string {
	if i := strings.IndexByte(channel, '!'); i >= 0 {
		return channel[:i+1]
	}
	return channel
}

// redact hides a URL's password, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
