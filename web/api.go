package web

import (
	"encoding/json"
	"net/http"
	"strconv"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/ws"
)

// The JSON API. Its answers are JSON both ways: {"messages": [...]} on
// success, {"error": code, "detail": reason} otherwise, with the room's own
// access rules (anonymous → 401 where an account is needed, 403 for a room
// one may not enter, 404 for one that does not exist).

// apiError writes a JSON error answer.
func apiError(w http.ResponseWriter, status int, code, detail string) {
	writeJSON(w, status, map[string]string{"error": code, "detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// apiRoom resolves the room of an API request and checks access, or
// answers with the reason and returns false.
func (s *Server) apiRoom(w http.ResponseWriter, r *http.Request) (chat.Room, bool) {
	u := chat.UserFromContext(r.Context())
	switch {
	case r.PathValue("room") != "":
		name := r.PathValue("room")
		if !chat.ValidRoomName(name) {
			apiError(w, http.StatusNotFound, "not_found", "invalid room name: "+roomNameRule.English())
			return chat.Room{}, false
		}
		if s.cfg.RequireLogin && u == nil {
			apiError(w, http.StatusUnauthorized, "unauthorized", "sign in first (this server admits no guests)")
			return chat.Room{}, false
		}
		return chat.PublicRoom(name), true
	case u == nil:
		apiError(w, http.StatusUnauthorized, "unauthorized", "sign in first (no valid session cookie)")
		return chat.Room{}, false
	case r.PathValue("id") != "":
		c, status, reason := s.courseAccess(r, u)
		if status != http.StatusOK {
			apiError(w, status, apiCode(status), reason.English())
			return chat.Room{}, false
		}
		return chat.CourseRoom(c.ID), true
	default:
		peer, status, reason := s.dmPeer(r, u)
		if peer == nil {
			apiError(w, status, apiCode(status), reason.English())
			return chat.Room{}, false
		}
		return chat.DMRoom(u.ID, peer.ID), true
	}
}

func apiCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}

// defaultHistoryLimit is how many messages a history request returns
// without limit=.
const defaultHistoryLimit = 50

// handleHistory serves a room's stored messages:
// GET /api/chat/<room>/messages (and /api/chat/room/<id>/messages,
// /api/chat/dm/<username>/messages) with after=, before= and limit=
// (default 50, at most 500), oldest first. With only before= (or neither)
// it returns the newest messages before it – how a page loads older
// history – and with after= the oldest after it.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	room, ok := s.apiRoom(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var mq chat.MessageQuery
	mq.Limit = defaultHistoryLimit
	for _, p := range []struct {
		name string
		dst  *int64
		min  int64
	}{{"after", &mq.After, 0}, {"before", &mq.Before, 1}} {
		if !q.Has(p.name) {
			continue
		}
		v, err := strconv.ParseInt(q.Get(p.name), 10, 64)
		if err != nil || v < p.min {
			apiError(w, http.StatusBadRequest, "bad_request", p.name+" must be a whole number >= "+strconv.FormatInt(p.min, 10)+" (a seq)")
			return
		}
		*p.dst = v
	}
	if q.Has("limit") {
		v, err := strconv.Atoi(q.Get("limit"))
		if err != nil || v < 1 || v > chat.MaxMessagesQuery {
			apiError(w, http.StatusBadRequest, "bad_request", "limit must be a whole number from 1 to "+strconv.Itoa(chat.MaxMessagesQuery))
			return
		}
		mq.Limit = v
	}
	if mq.Before > 0 && mq.After >= mq.Before-1 {
		apiError(w, http.StatusBadRequest, "bad_request", "after must be lower than before - 1: the range is empty")
		return
	}
	mq.Newest = !q.Has("after")
	node := s.hub.Node()
	if !node.History() {
		apiError(w, http.StatusNotFound, "history_off", "this server keeps no history (HISTORY=off)")
		return
	}
	msgs, err := node.Store().Messages(r.Context(), room.Key(), mq)
	if err != nil {
		s.log.Error("web: history", "room", room.Key(), "err", err)
		w.Header().Set("Retry-After", "5")
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the message store is unavailable, try again later")
		return
	}
	out := make([]ws.ChatMessage, len(msgs))
	for i, m := range msgs {
		out[i] = ws.ChatMessageOf(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

// presenceUser is one user in a presence answer.
type presenceUser struct {
	User  string `json:"user"`
	Since string `json:"since"`
}

// handlePresence serves who is in a room now, on every process:
// GET /api/chat/<room>/presence (and /api/chat/room/<id>/presence,
// /api/chat/dm/<username>/presence), with the room's access rules, as
// {"room": ..., "users": [{"user", "since"}, ...], "count": N}, the longest
// present first.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	room, ok := s.apiRoom(w, r)
	if !ok {
		return
	}
	ms, on := s.hub.Presence(room.Key())
	if !on {
		apiError(w, http.StatusNotFound, "presence_off", "this server does not track presence (PRESENCE=off)")
		return
	}
	users := make([]presenceUser, len(ms))
	for i, m := range ms {
		users[i] = presenceUser{User: m.User, Since: m.Since.UTC().Format(ws.TimeFormat)}
	}
	tag := room.Name
	if room.Kind != chat.RoomPublic {
		tag = room.Key()
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": tag, "users": users, "count": len(users)})
}
