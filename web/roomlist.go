package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	chat "github.com/chatd/chat"
)

// The room list (/chat/), read positions and unread counts.
//
// A signed-in user's room pages report how far they have read
// (POST .../read, from room.js, while the page is visible); the store keeps
// it per user and room (Store.MarkRead) and counts what others wrote since
// (Store.RoomReads). /chat/ lists the user's course rooms, private
// conversations and recently visited public rooms with those counts, and
// every page's header shows the unread total of course rooms and private
// conversations, which nav.js refreshes from GET /api/unread every
// Config.UnreadPoll while the page is visible. A guest has no account to
// keep this in: their recent rooms live in the browser's localStorage.

// RecentRooms is how many recently visited public rooms /chat/ lists.
const RecentRooms = 10

// roomEntry is one room of the room list.
type roomEntry struct {
	Key     string // chat.Room.Key(): data-room-key, which nav.js updates
	Path    string
	Title   string
	Handle  string // a private room's other person's username, if their display name is the title
	Unread  int
	Counted bool   // part of the header's total (course rooms and private rooms)
	Label   string // "N unread messages" in the reader's language
}

// UnreadLabel returns "N" for the badge, "99+" at MaxUnread.
func (e roomEntry) UnreadLabel() string { return unreadLabel(e.Unread) }

func unreadLabel(n int) string {
	if n >= chat.MaxUnread {
		return strconv.Itoa(chat.MaxUnread-1) + "+"
	}
	return strconv.Itoa(n)
}

// roomLists returns u's course rooms, private rooms (most recent message
// first) and recently visited public rooms.
func (s *Server) roomLists(r *http.Request, u *chat.User) (courses, dms, recent []roomEntry, err error) {
	cs, err := s.store.CoursesForUser(r.Context(), u.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	also := make([]string, len(cs))
	for i, c := range cs {
		also[i] = chat.CourseRoomKey(c.ID)
	}
	reads, err := s.store.RoomReads(r.Context(), u.ID, also)
	if err != nil {
		return nil, nil, nil, err
	}
	byKey := make(map[string]chat.RoomRead, len(reads))
	for _, rr := range reads {
		byKey[rr.Room] = rr
	}
	for _, c := range cs {
		key := chat.CourseRoomKey(c.ID)
		courses = append(courses, roomEntry{Key: key, Path: "/chat/room/" + strconv.FormatInt(c.ID, 10) + "/",
			Title: c.Title, Unread: byKey[key].Unread, Counted: true})
	}
	type dm struct {
		roomEntry
		last chat.RoomRead
	}
	var dmRows []dm
	for _, rr := range reads {
		room, ok := chat.ParseRoomKey(rr.Room)
		if !ok {
			continue
		}
		switch room.Kind {
		case chat.RoomPublic:
			if len(recent) < RecentRooms {
				recent = append(recent, roomEntry{Key: rr.Room, Path: roomPath(room.Name), Title: "#" + room.Name, Unread: rr.Unread})
			}
		case chat.RoomDM:
			peerID := room.DM[0]
			if peerID == u.ID {
				peerID = room.DM[1]
			}
			peer, err := s.store.UserByID(r.Context(), peerID)
			if chat.ErrorCode(err) == chat.ENOTFOUND {
				continue // the account was deleted; its messages stay in history
			} else if err != nil {
				return nil, nil, nil, err
			}
			e := roomEntry{Key: rr.Room, Path: "/chat/dm/" + pathEscape(peer.Username) + "/", Title: peer.Username,
				Unread: rr.Unread, Counted: true}
			if peer.DisplayName != "" && peer.DisplayName != peer.Username {
				e.Title, e.Handle = peer.DisplayName, peer.Username
			}
			dmRows = append(dmRows, dm{e, rr})
		}
	}
	slices.SortStableFunc(dmRows, func(a, b dm) int { return b.last.LastAt.Compare(a.last.LastAt) })
	for _, d := range dmRows {
		dms = append(dms, d.roomEntry)
	}
	return courses, dms, recent, nil
}

// handleIndex shows the room picker and, for a signed-in user, their rooms
// with unread counts. A no-JavaScript form submit arrives as ?room=name and
// is redirected, or answered with the reason it is invalid.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"MaxLen": chat.MaxRoomNameLen}
	status := http.StatusOK
	if r.URL.Query().Has("room") {
		name := strings.TrimSpace(r.URL.Query().Get("room"))
		rule, ok := s.roomRule(name)
		if ok {
			http.Redirect(w, r, roomPath(name), http.StatusFound)
			return
		}
		data["Room"] = name
		data["Error"] = rule
		status = http.StatusBadRequest
	}
	if s.cfg.RequireLogin && chat.UserFromContext(r.Context()) == nil {
		s.render(w, r, status, "index.html", data)
		return
	}
	if u := chat.UserFromContext(r.Context()); u != nil {
		courses, dms, recent, err := s.roomLists(r, u)
		if err != nil {
			s.log.Error("web: room lists", "user", u.Username, "err", err)
			s.unavailable(w, r)
			return
		}
		loc := s.localizer(r)
		for _, list := range [][]roomEntry{courses, dms, recent} {
			for i := range list {
				list[i].Label = loc.T("%d unread messages", list[i].Unread)
			}
		}
		data["Courses"], data["DMs"], data["Recent"] = courses, dms, recent
	}
	s.render(w, r, status, "index.html", data)
}

// handleUnread answers a signed-in user's unread counts: {"total": N (course
// rooms and private rooms), "rooms": {key: N, ...}} for every room with
// something unread. nav.js polls it.
func (s *Server) handleUnread(w http.ResponseWriter, r *http.Request) {
	u := chat.UserFromContext(r.Context())
	if u == nil {
		apiError(w, http.StatusUnauthorized, "unauthorized", "sign in first (no valid session cookie)")
		return
	}
	courses, err := s.store.CoursesForUser(r.Context(), u.ID)
	var reads []chat.RoomRead
	if err == nil {
		also := make([]string, len(courses))
		for i, c := range courses {
			also[i] = chat.CourseRoomKey(c.ID)
		}
		reads, err = s.store.RoomReads(r.Context(), u.ID, also)
	}
	if err != nil {
		s.log.Error("web: unread counts", "user", u.Username, "err", err)
		w.Header().Set("Retry-After", "5")
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the database is unavailable, try again later")
		return
	}
	mine := make(map[string]bool, len(courses))
	for _, c := range courses {
		mine[chat.CourseRoomKey(c.ID)] = true
	}
	total, rooms := 0, map[string]int{}
	for _, rr := range reads {
		if rr.Unread == 0 {
			continue
		}
		rooms[rr.Room] = rr.Unread
		if room, ok := chat.ParseRoomKey(rr.Room); ok && (room.Kind == chat.RoomDM || mine[rr.Room]) {
			total += rr.Unread
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "rooms": rooms})
}

// handleMarkRead records how far the signed-in user has read a room:
// POST /api/chat/<room>/read (and room/<id>/, dm/<username>/) with
// {"seq": N}, the highest seq their page has shown (0 records the visit
// alone). The room's own access rules apply; a seq past the room's last is
// taken as its last. 204 on success.
func (s *Server) handleMarkRead(w http.ResponseWriter, r *http.Request) {
	u := chat.UserFromContext(r.Context())
	if u == nil {
		apiError(w, http.StatusUnauthorized, "unauthorized", "sign in first: read positions are kept for accounts")
		return
	}
	room, ok := s.apiRoom(w, r)
	if !ok {
		return
	}
	var body struct {
		Seq int64 `json:"seq"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1024)
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Seq < 0 {
		apiError(w, http.StatusBadRequest, "bad_request", `send {"seq": N}, N a whole number >= 0`)
		return
	}
	if body.Seq > 0 {
		_, last, err := s.store.RoomSeq(r.Context(), room.Key())
		if err != nil {
			s.log.Error("web: mark read", "room", room.Key(), "err", err)
			apiError(w, http.StatusServiceUnavailable, "unavailable", "the database is unavailable, try again later")
			return
		}
		body.Seq = min(body.Seq, last)
	}
	if err := s.store.MarkRead(r.Context(), u.ID, room.Key(), body.Seq, s.cfg.Now()); err != nil {
		s.log.Error("web: mark read", "room", room.Key(), "err", err)
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the database is unavailable, try again later")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
