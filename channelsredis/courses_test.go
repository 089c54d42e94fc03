package channelsredis_test

import (
	"context"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/channelsredis"
	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/redis"
)

// openCourses is open with course rooms bridged under pattern (none when
// empty).
func openCourses(t *testing.T, srv *redistest.Server, kind, dep, pattern string, in *inbound) *channelsredis.Layer {
	t.Helper()
	ctx := context.Background()
	inner, err := redis.New(ctx, redis.Options{URL: srv.URL(), Prefix: "chatd-" + dep + ":", Logger: quiet()}, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	opt := channelsredis.Options{Kind: kind, Hosts: []string{srv.URL()}, Deployment: dep, Logger: quiet()}
	if pattern != "" {
		if opt.CourseGroups, err = channelsredis.ParseCourseGroupPattern(pattern); err != nil {
			t.Fatal(err)
		}
	}
	if in != nil {
		opt.Inbound = in.fn
	}
	l, err := channelsredis.New(ctx, opt, inner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestCourseGroups checks the bridge of course rooms (the educa tutorial's
// group chat_<course id>): what one deployment sends in course 12 reaches
// another's course room 12 once, a deployment that does not bridge course
// rooms neither joins nor sends, private rooms are never bridged, and a
// public room whose group would be a course's is refused.
func TestCourseGroups(t *testing.T) {
	for _, kind := range []string{channelsredis.KindCore, channelsredis.KindPubSub} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			inA, inB, inOff := newInbound(), newInbound(), newInbound()
			a := openCourses(t, srv, kind, "aaaaaaaaaaaaaaaa", "chat_{course}", inA)
			b := openCourses(t, srv, kind, "bbbbbbbbbbbbbbbb", "chat_{course}", inB)
			off := openCourses(t, srv, kind, "cccccccccccccccc", "", inOff)
			for _, l := range []*channelsredis.Layer{a, b, off} {
				for _, r := range []chat.Room{chat.CourseRoom(12), chat.CourseRoom(13), chat.PublicRoom("lobby"), chat.DMRoom(1, 2)} {
					if err := l.Subscribe(ctx, r.Key()); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !a.Bridged(chat.CourseRoom(12)) || off.Bridged(chat.CourseRoom(12)) || a.Bridged(chat.DMRoom(1, 2)) || !off.Bridged(chat.PublicRoom("lobby")) {
				t.Error("Bridged answers wrongly")
			}
			send := func(l *channelsredis.Layer, r chat.Room, text string) {
				t.Helper()
				if _, err := l.Send(ctx, r, []channelsredis.Field{{Key: "message", Value: text}, {Key: "user", Value: "alice"}}); err != nil {
					t.Fatal(err)
				}
			}
			send(b, chat.CourseRoom(12), "course 12 from b")
			send(b, chat.CourseRoom(13), "course 13 from b")
			send(b, chat.DMRoom(1, 2), "private") // not bridged: goes nowhere
			send(off, chat.CourseRoom(12), "course 12 from off")
			send(a, chat.CourseRoom(12), "course 12 from a")
			// Markers in the lobby, sent last, show that nothing else is on
			// its way (one sender's events arrive in order).
			send(b, chat.PublicRoom("lobby"), "marker from b")
			send(a, chat.PublicRoom("lobby"), "marker from a")
			waitFor(t, "b's marker in a", func() bool { return len(inA.list()) >= 3 })
			waitFor(t, "a's marker in b and off", func() bool { return len(inB.list()) >= 2 && len(inOff.list()) >= 2 })
			if got := strings.Join(inA.list(), "|"); got != "course:12:course 12 from b|course:13:course 13 from b|lobby:marker from b" {
				t.Errorf("a took %q", got)
			}
			if got := strings.Join(inB.list(), "|"); got != "course:12:course 12 from a|lobby:marker from a" {
				t.Errorf("b took %q", got)
			}
			// off takes both markers and no course event.
			if got := strings.Join(inOff.list(), "|"); got != "lobby:marker from b|lobby:marker from a" {
				t.Errorf("the deployment without course groups took %q", got)
			}

			// Public room 12 would be course 12's group chat_12.
			if err := a.CheckRoom("12"); err == nil || !strings.Contains(err.Error(), "course 12") {
				t.Errorf("CheckRoom(12) with course groups: %v", err)
			}
			for _, name := range []string{"012", "12a", "lobby"} {
				if err := a.CheckRoom(name); err != nil {
					t.Errorf("CheckRoom(%s): %v", name, err)
				}
			}
			if err := off.CheckRoom("12"); err != nil {
				t.Errorf("CheckRoom(12) without course groups: %v", err)
			}
		})
	}
}

func TestParseCourseGroupPattern(t *testing.T) {
	for _, p := range []string{"chat_{course}", "course.{course}.chat", "{course}"} {
		g, err := channelsredis.ParseCourseGroupPattern(p)
		if err != nil || g.IsZero() {
			t.Errorf("%q: %v", p, err)
			continue
		}
		if name, ok := g.Group("12"); !ok || name != strings.Replace(p, "{course}", "12", 1) {
			t.Errorf("%q: group %q %v", p, name, ok)
		}
	}
	for _, p := range []string{"chat_{room}", "chat_{course}_{course}", "chat {course}", "chat:{course}", ""} {
		if _, err := channelsredis.ParseCourseGroupPattern(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}
