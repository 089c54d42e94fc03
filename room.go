package chat

import (
	"strconv"
	"strings"
)

// RoomKind says who may enter a room.
type RoomKind uint8

// The kinds of room.
const (
	RoomPublic RoomKind = iota + 1 // anyone allowed to chat (guests too, unless logins are required)
	RoomCourse                     // a course's owner and its enrolled students
	RoomDM                         // exactly two users
)

// Room identifies a chat room. Its Key is the one name every part of chatd
// uses for it: the channel layer group, the store's key for its messages and
// sequence, and the selector that revocations match. It is defined here,
// once, so that no package derives a room's name on its own.
type Room struct {
	Kind     RoomKind
	Name     string   // public rooms: the name in the URL
	CourseID int64    // course rooms
	DM       [2]int64 // private rooms: the two users' ids, smaller first
}

// PublicRoom returns the public room called name (which the caller has
// checked with ValidRoomName).
func PublicRoom(name string) Room { return Room{Kind: RoomPublic, Name: name} }

// CourseRoom returns the chat room of course id.
func CourseRoom(id int64) Room { return Room{Kind: RoomCourse, CourseID: id} }

// DMRoom returns the private room of users a and b, whichever opens it.
// Users are identified by id, not by name, so that a room's history stays
// with its two people whatever happens to the spelling rules of usernames.
func DMRoom(a, b int64) Room {
	if b < a {
		a, b = b, a
	}
	return Room{Kind: RoomDM, DM: [2]int64{a, b}}
}

// Key returns the room's key: "chat:<name>" for a public room (the group
// name chatd has always used), "course:<id>" and "dm:<id>:<id>".
func (r Room) Key() string {
	switch r.Kind {
	case RoomPublic:
		return "chat:" + r.Name
	case RoomCourse:
		return CourseRoomKey(r.CourseID)
	case RoomDM:
		return "dm:" + strconv.FormatInt(r.DM[0], 10) + ":" + strconv.FormatInt(r.DM[1], 10)
	}
	return ""
}

// CourseRoomKey returns the key of course id's chat room. Stores use it to
// delete a course's messages with the course.
func CourseRoomKey(id int64) string { return "course:" + strconv.FormatInt(id, 10) }

// ParseRoomKey returns the room whose Key is key.
func ParseRoomKey(key string) (Room, bool) {
	kind, rest, ok := strings.Cut(key, ":")
	if !ok {
		return Room{}, false
	}
	switch kind {
	case "chat":
		if ValidRoomName(rest) {
			return PublicRoom(rest), true
		}
	case "course":
		if id, err := strconv.ParseInt(rest, 10, 64); err == nil && id > 0 {
			return CourseRoom(id), true
		}
	case "dm":
		a, b, ok := strings.Cut(rest, ":")
		if !ok {
			return Room{}, false
		}
		ia, err1 := strconv.ParseInt(a, 10, 64)
		ib, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil && ia > 0 && ib > ia {
			return DMRoom(ia, ib), true
		}
	}
	return Room{}, false
}
