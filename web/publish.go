package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/ws"
)

// The publish API: other software posts into rooms with an API key, as a
// Django view does with channel_layer.group_send or a Centrifugo client
// with its HTTP publish API.
//
//	POST /api/chat/<room>/messages              a public room
//	POST /api/chat/room/<id>/messages           a course's room
//	POST /api/chat/dm/<user>/<user>/messages    the private room of two accounts
//	POST /api/chat/messages                     one message to many rooms (a batch)
//
// with Authorization: Bearer <key> and {"message": "...", "id": "..."}. A
// message takes exactly the path of a socket message: core.Node.Submit
// stores it in the next group commit with the room's next seq, publishes it
// in seq order to every process's sockets, and reports the outcome after
// the commit, which is when the answer is written: 201 with the stored
// message (its seq), 200 with the stored original for a retry of an id the
// bot already used in that room, 202 without a seq when the server keeps
// no history (HISTORY=off: delivered to the sockets open now, nothing
// stored, an id not checked for repeats). Errors are the history API's
// JSON: {"error": code, "detail": reason}. See docs/api.md.

// MaxBatchRooms is the most rooms one batch request may name.
const MaxBatchRooms = 100

// publishBody is the JSON body of a publish request. Raw values tell
// absent from null from a value of the wrong type.
type publishBody struct {
	Message *json.RawMessage `json:"message"`
	ID      *json.RawMessage `json:"id"`
	Rooms   *json.RawMessage `json:"rooms"` // the batch form only
}

// apiFailure is an error answer of the publish API.
type apiFailure struct {
	Status int
	Code   string
	Detail string
}

func fail(status int, code, detail string) *apiFailure {
	return &apiFailure{Status: status, Code: code, Detail: detail}
}

func (f *apiFailure) write(w http.ResponseWriter) {
	if f.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	apiError(w, f.Status, f.Code, f.Detail)
}

// parsePublish reads a publish request's body: the message's text, its id
// ("" if none) and, for a batch, the rooms as given.
func parsePublish(r *http.Request, batch bool) (text, id string, rooms []string, f *apiFailure) {
	data, err := io.ReadAll(r.Body) // already read, and bounded, by limitRequestTime
	if err != nil {
		return "", "", nil, fail(http.StatusBadRequest, "bad_request", "the request body could not be read")
	}
	usage := `send a JSON object: {"message": "text", "id": "optional-unique-id"}`
	if batch {
		usage = `send a JSON object: {"rooms": ["lobby", "course:12"], "message": "text", "id": "optional-unique-id"}`
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || !json.Valid(trimmed) {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_json", "the body is not valid JSON; "+usage)
	}
	if trimmed[0] != '{' {
		return "", "", nil, fail(http.StatusBadRequest, "not_object", "the body must be a JSON object; "+usage)
	}
	var in publishBody
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return "", "", nil, fail(http.StatusBadRequest, "unknown_field", "unknown field "+name+"; "+usage)
		}
		return "", "", nil, fail(http.StatusBadRequest, "invalid_json", "the body could not be decoded: "+err.Error())
	}
	if in.Rooms != nil && !batch {
		return "", "", nil, fail(http.StatusBadRequest, "unknown_field",
			`"rooms" belongs to the batch form, POST /api/chat/messages; here the room is in the URL`)
	}
	if in.ID != nil {
		if err := json.Unmarshal(*in.ID, &id); err != nil {
			return "", "", nil, fail(http.StatusBadRequest, core.CodeInvalidID, `"id" must be a string of 1 to 64 printable ASCII characters`)
		}
		if inv := core.CheckClientID(id); inv != nil {
			return "", "", nil, fail(http.StatusBadRequest, inv.Code, inv.Detail)
		}
	}
	if in.Message == nil {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_message", `the "message" field is missing; `+usage)
	}
	if err := json.Unmarshal(*in.Message, &text); err != nil {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_message", `the "message" field must be a string`)
	}
	if inv := core.CheckText(text); inv != nil {
		status := http.StatusBadRequest
		if inv.Code == core.CodeMessageTooLong {
			status = http.StatusRequestEntityTooLarge
		}
		return "", "", nil, fail(status, inv.Code, inv.Detail)
	}
	if !batch {
		return text, id, nil, nil
	}
	if in.Rooms == nil {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_rooms", `the "rooms" field is missing; `+usage)
	}
	if err := json.Unmarshal(*in.Rooms, &rooms); err != nil || rooms == nil {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_rooms", `"rooms" must be an array of strings; `+usage)
	}
	if len(rooms) == 0 {
		return "", "", nil, fail(http.StatusBadRequest, "invalid_rooms", `"rooms" is empty: name at least one room`)
	}
	seen := make(map[string]bool, len(rooms))
	for _, ref := range rooms {
		if seen[ref] {
			return "", "", nil, fail(http.StatusBadRequest, "invalid_rooms", "room "+strconv.Quote(ref)+" is listed twice")
		}
		seen[ref] = true
	}
	return text, id, rooms, nil
}

// apiKey authenticates a publish request by its bearer key.
func (s *Server) apiKey(r *http.Request) (*chat.APIKey, *apiFailure) {
	scheme, secret, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, fail(http.StatusUnauthorized, "unauthorized",
			"send an API key: Authorization: Bearer <key> (an administrator makes one with chatd createkey or on /manage/keys/)")
	}
	k, err := s.store.APIKeyBySecret(r.Context(), secret)
	switch chat.ErrorCode(err) {
	case "":
		return k, nil
	case chat.ENOTFOUND:
		return nil, fail(http.StatusUnauthorized, "invalid_key", "the API key is unknown or was revoked")
	default:
		s.log.Error("web: api key lookup", "err", err)
		return nil, fail(http.StatusServiceUnavailable, "unavailable", "the key database is unavailable, try again later")
	}
}

// unauthorized writes a 401 with the challenge RFC 6750 asks for.
func unauthorized(w http.ResponseWriter, f *apiFailure) {
	if f.Code == "invalid_key" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatd", error="invalid_token"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatd"`)
	}
	f.write(w)
}

// charge takes n messages from the key's budget, or says when to retry.
func (s *Server) charge(w http.ResponseWriter, k *chat.APIKey, n int) bool {
	ok, wait := s.apiBudget.AllowN(strconv.FormatInt(k.ID, 10), n, s.cfg.Now())
	if ok {
		return true
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	apiError(w, http.StatusTooManyRequests, "rate_limited", "this API key may post "+
		strconv.FormatFloat(s.cfg.APIRateLimit, 'g', -1, 64)+" messages a second (bursts of "+
		strconv.Itoa(s.apiBudget.Burst())+"; a batch counts one per room); try again in "+strconv.Itoa(secs)+" s")
	return false
}

// maxBatch is the most rooms a batch may name: MaxBatchRooms, and no more
// than the key's budget can ever hold.
func (s *Server) maxBatch() int {
	if b := s.apiBudget.Burst(); b > 0 && b < MaxBatchRooms {
		return b
	}
	return MaxBatchRooms
}

// parseRoomRef reads a room as the batch form names it: a public room's
// name ("lobby"), or a room key: "chat:<name>", "course:<id>",
// "dm:<id>:<id>" (in either order).
func parseRoomRef(ref string) (chat.Room, *apiFailure) {
	kind, rest, found := strings.Cut(ref, ":")
	switch {
	case !found && chat.ValidRoomName(ref):
		return chat.PublicRoom(ref), nil
	case found && kind == "chat" && chat.ValidRoomName(rest):
		return chat.PublicRoom(rest), nil
	case found && kind == "course":
		if id, err := strconv.ParseInt(rest, 10, 64); err == nil && id > 0 {
			return chat.CourseRoom(id), nil
		}
	case found && kind == "dm":
		a, b, ok := strings.Cut(rest, ":")
		ia, err1 := strconv.ParseInt(a, 10, 64)
		ib, err2 := strconv.ParseInt(b, 10, 64)
		if ok && err1 == nil && err2 == nil && ia > 0 && ib > 0 {
			if ia == ib {
				return chat.Room{}, fail(http.StatusBadRequest, "bad_request", "a private room is between two different accounts")
			}
			return chat.DMRoom(ia, ib), nil
		}
	}
	return chat.Room{}, fail(http.StatusNotFound, "not_found",
		"not a room: name a public room (lobby or chat:lobby), a course room (course:<id>) or a private room (dm:<user id>:<user id>)")
}

// checkRoom checks that room exists (public rooms always do) and that k
// may post to it. The key's patterns are checked first, so a key without
// rights to course rooms cannot learn which courses exist.
func (s *Server) checkRoom(ctx context.Context, k *chat.APIKey, room chat.Room) *apiFailure {
	if !k.AllowsRoom(room.Key()) {
		return fail(http.StatusForbidden, "forbidden", "this API key may not post to "+room.Key()+" (its rooms: "+k.Rooms+")")
	}
	var err error
	var what string
	switch room.Kind {
	case chat.RoomCourse:
		if s.cfg.ExternalCourses != nil {
			_, err = s.cfg.ExternalCourses.Course(ctx, room.CourseID)
		} else {
			_, err = s.store.CourseByID(ctx, room.CourseID)
		}
		what = "there is no course " + strconv.FormatInt(room.CourseID, 10)
	case chat.RoomDM:
		for _, id := range room.DM {
			if _, err = s.store.UserByID(ctx, id); err != nil {
				what = "there is no user with id " + strconv.FormatInt(id, 10)
				break
			}
		}
	}
	switch chat.ErrorCode(err) {
	case "":
		return nil
	case chat.ENOTFOUND:
		return fail(http.StatusNotFound, "not_found", what)
	default:
		s.log.Error("web: publish room lookup", "room", room.Key(), "err", err)
		return fail(http.StatusServiceUnavailable, "unavailable", "the database is unavailable, try again later")
	}
}

// urlRoom resolves the room of a single publish request from its URL.
func (s *Server) urlRoom(r *http.Request, k *chat.APIKey) (chat.Room, *apiFailure) {
	switch {
	case r.PathValue("room") != "":
		name := r.PathValue("room")
		if !chat.ValidRoomName(name) {
			return chat.Room{}, fail(http.StatusNotFound, "not_found", "invalid room name: "+roomNameRule.English())
		}
		room := chat.PublicRoom(name)
		return room, s.checkRoom(r.Context(), k, room)
	case r.PathValue("id") != "":
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			return chat.Room{}, fail(http.StatusNotFound, "not_found", "a course id is a positive number")
		}
		room := chat.CourseRoom(id)
		return room, s.checkRoom(r.Context(), k, room)
	default:
		var ids [2]int64
		for i, name := range []string{r.PathValue("a"), r.PathValue("b")} {
			u, err := s.store.UserByUsername(r.Context(), name)
			switch chat.ErrorCode(err) {
			case "":
				ids[i] = u.ID
			case chat.ENOTFOUND, chat.EINVALID:
				return chat.Room{}, fail(http.StatusNotFound, "not_found", "there is no user "+strconv.Quote(name))
			default:
				s.log.Error("web: publish user lookup", "err", err)
				return chat.Room{}, fail(http.StatusServiceUnavailable, "unavailable", "the account database is unavailable, try again later")
			}
		}
		if ids[0] == ids[1] {
			return chat.Room{}, fail(http.StatusBadRequest, "bad_request", "a private room is between two different accounts")
		}
		room := chat.DMRoom(ids[0], ids[1])
		return room, s.checkRoom(r.Context(), k, room)
	}
}

// pending is a message submitted to the node whose outcome is awaited.
type pending struct {
	done chan core.Result
	err  error // Submit's own refusal
}

// submit offers the bot's message to room and returns at once; wait
// gives the outcome.
func (s *Server) submit(ctx context.Context, k *chat.APIKey, room chat.Room, text, id string) *pending {
	p := &pending{done: make(chan core.Result, 1)}
	p.err = s.hub.Node().Submit(ctx, &core.Post{
		Room:     room.Key(),
		User:     chat.BotUser(k.Bot),
		Text:     text,
		ClientID: id,
		Done:     func(res core.Result) { p.done <- res }, // buffered: never blocks the committer
	})
	return p
}

// wait returns the HTTP status of the submitted message and, on success,
// the message as stored (or as delivered, with history off).
func (s *Server) wait(ctx context.Context, p *pending) (int, *chat.Message, *apiFailure) {
	if p.err != nil {
		return 0, nil, fail(http.StatusServiceUnavailable, "unavailable", "the server is busy or shutting down; the message was not sent, try again")
	}
	var res core.Result
	select {
	case res = <-p.done:
	case <-ctx.Done():
		// The request's deadline passed first; the message may still be stored.
		return 0, nil, fail(http.StatusServiceUnavailable, "unavailable", "no answer from the store in time; send the message again with the same id")
	}
	history := s.hub.Node().History()
	switch {
	case res.Err != nil && chat.ErrorCode(res.Err) == chat.EINVALID:
		return 0, nil, fail(http.StatusBadRequest, "invalid_message", chat.ErrorMessage(res.Err))
	case res.Err != nil && history:
		return 0, nil, fail(http.StatusServiceUnavailable, "unavailable", "the message could not be stored right now; it was not sent, try again")
	case res.Err != nil:
		return 0, nil, fail(http.StatusServiceUnavailable, "unavailable", "the message could not be delivered (channel layer unavailable); try again")
	case !history:
		return http.StatusAccepted, res.Message, nil
	case res.Message.Duplicate:
		return http.StatusOK, res.Message, nil
	}
	return http.StatusCreated, res.Message, nil
}

// handlePublish posts one message into the room in the URL.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	k, f := s.apiKey(r)
	if f != nil {
		unauthorizedOr(w, f)
		return
	}
	text, id, _, f := parsePublish(r, false)
	if f != nil {
		f.write(w)
		return
	}
	if !s.charge(w, k, 1) {
		return
	}
	room, f := s.urlRoom(r, k)
	if f != nil {
		f.write(w)
		return
	}
	status, m, f := s.wait(r.Context(), s.submit(r.Context(), k, room, text, id))
	if f != nil {
		f.write(w)
		return
	}
	s.log.Debug("web: published", "key", k.Name, "room", m.Room, "seq", m.Seq, "status", status)
	writeJSON(w, status, ws.ChatMessageOf(m))
}

// batchResult is one room's outcome in a batch answer.
type batchResult struct {
	Room     string `json:"room"`   // as the request named it
	Status   int    `json:"status"` // what a single request to the room would have answered
	Seq      int64  `json:"seq,omitempty"`
	Datetime string `json:"datetime,omitempty"`
	Error    string `json:"error,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// handlePublishBatch posts one message into many rooms: POST
// /api/chat/messages with {"rooms": [...], "message": ..., "id": ...}. It
// answers 200 with each room's outcome in the order given, once every
// room's message is stored (the node stores them together, in as few
// commits as it can). The id makes each room's message idempotent, so a
// failed batch is retried whole with the same id.
func (s *Server) handlePublishBatch(w http.ResponseWriter, r *http.Request) {
	k, f := s.apiKey(r)
	if f != nil {
		unauthorizedOr(w, f)
		return
	}
	text, id, refs, f := parsePublish(r, true)
	if f != nil {
		f.write(w)
		return
	}
	if limit := s.maxBatch(); len(refs) > limit {
		apiError(w, http.StatusRequestEntityTooLarge, "too_many_rooms",
			"a batch may name at most "+strconv.Itoa(limit)+" rooms; this one names "+strconv.Itoa(len(refs))+": split it")
		return
	}
	if !s.charge(w, k, len(refs)) {
		return
	}
	results := make([]batchResult, len(refs))
	waits := make([]*pending, len(refs))
	keys := make(map[string]bool, len(refs))
	for i, ref := range refs {
		results[i].Room = ref
		room, f := parseRoomRef(ref)
		if f == nil && keys[room.Key()] {
			f = fail(http.StatusBadRequest, "bad_request", "the same room as an earlier entry ("+room.Key()+")")
		}
		if f == nil {
			keys[room.Key()] = true
			f = s.checkRoom(r.Context(), k, room)
		}
		if f != nil {
			results[i].Status, results[i].Error, results[i].Detail = f.Status, f.Code, f.Detail
			continue
		}
		waits[i] = s.submit(r.Context(), k, room, text, id)
	}
	stored := 0
	for i, p := range waits {
		if p == nil {
			continue
		}
		status, m, f := s.wait(r.Context(), p)
		if f != nil {
			results[i].Status, results[i].Error, results[i].Detail = f.Status, f.Code, f.Detail
			continue
		}
		stored++
		results[i].Status, results[i].Seq, results[i].Datetime = status, m.Seq, ws.ChatMessageOf(m).Datetime
	}
	s.log.Debug("web: published batch", "key", k.Name, "rooms", len(refs), "ok", stored)
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

// unauthorizedOr writes f, with the bearer challenge for a 401.
func unauthorizedOr(w http.ResponseWriter, f *apiFailure) {
	if f.Status == http.StatusUnauthorized {
		unauthorized(w, f)
		return
	}
	f.write(w)
}

// apiJSONPath reports whether r is for the JSON API, whose errors are
// JSON even when middleware answers (CSRF, body limits).
func apiJSONPath(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
