package chat_test

import (
	"testing"

	chat "github.com/chatd/chat"
)

func TestRoomKeys(t *testing.T) {
	for _, tc := range []struct {
		room chat.Room
		key  string
	}{
		{chat.PublicRoom("lobby"), "chat:lobby"},
		{chat.PublicRoom("salón.1"), "chat:salón.1"},
		{chat.CourseRoom(7), "course:7"},
		{chat.DMRoom(9, 3), "dm:3:9"},
		{chat.DMRoom(3, 9), "dm:3:9"},
	} {
		if got := tc.room.Key(); got != tc.key {
			t.Errorf("%+v.Key() = %q, want %q", tc.room, got, tc.key)
		}
		back, ok := chat.ParseRoomKey(tc.key)
		if !ok || back != tc.room {
			t.Errorf("ParseRoomKey(%q) = %+v, %v; want %+v", tc.key, back, ok, tc.room)
		}
	}
	for _, bad := range []string{"", "lobby", "chat:", "chat:..", "chat:a b", "course:0", "course:-1", "course:x",
		"dm:3", "dm:3:3", "dm:9:3", "dm:0:1", "other:1"} {
		if r, ok := chat.ParseRoomKey(bad); ok {
			t.Errorf("ParseRoomKey(%q) = %+v, want refused", bad, r)
		}
	}
	if chat.CourseRoomKey(7) != chat.CourseRoom(7).Key() {
		t.Error("CourseRoomKey disagrees with CourseRoom.Key")
	}
}
