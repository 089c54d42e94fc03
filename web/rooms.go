package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/ws"
)

// Course rooms and private (DM) rooms. Both are for signed-in users only and
// are authorised twice: on the page and again on the WebSocket upgrade,
// before the 101, so a socket opened without the page gets the same answer.
// Access taken away later reaches open sockets through the store's
// revocations, which every process polls (see ws/authz.go).

// socketUser fills opts with the signed-in user of r, their session (so
// logout closes the socket) and a Recheck. courseID, if not 0, is also
// re-checked for membership. It reports false for an anonymous request.
func (s *Server) socketUser(r *http.Request, opts *ws.JoinOptions, courseID int64) bool {
	u, sess := chat.UserFromContext(r.Context()), sessionFromContext(r.Context())
	if u == nil || sess == nil {
		return false
	}
	opts.User = u
	if sess.External != "" {
		id := externalID(sess.External)
		opts.Session = externalPrefix + id
		opts.Expires = sess.Expires
		opts.Recheck = s.recheckExternal(sess.External, u.ID, courseID)
		s.ext.add(id, sess.External, u.ID)
		return true
	}
	opts.Session = strconv.FormatInt(sess.ID, 10)
	opts.Expires = sess.Expires
	opts.Recheck = s.recheck(sess.Token, u.ID, courseID)
	return true
}

// recheck returns the check run on a signed-in user's open socket: the
// session must still exist (not logged out, expired or ended by the admin
// command setpassword) and, in a course room, the user must still be its
// owner or a student.
func (s *Server) recheck(token string, userID, courseID int64) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, _, err := s.store.SessionUser(ctx, token)
		if chat.ErrorCode(err) == chat.ENOTFOUND {
			return chat.Errorf(chat.EUNAUTHORIZED, "session ended")
		} else if err != nil {
			return err
		}
		if courseID == 0 {
			return nil
		}
		ok, err := s.store.CanEnterCourse(ctx, courseID, userID)
		switch {
		case chat.ErrorCode(err) == chat.ENOTFOUND:
			return chat.Errorf(chat.ENOTFOUND, "course deleted")
		case err != nil:
			return err
		case !ok:
			return chat.Errorf(chat.EFORBIDDEN, "no longer enrolled")
		}
		return nil
	}
}

// rejectAnonymous refuses a socket that needs a signed-in user: 401.
func (s *Server) rejectAnonymous(w http.ResponseWriter, r *http.Request) {
	s.reject(w, r, http.StatusUnauthorized, "sign in first (no valid session cookie)")
}

// courseAccess loads the course in the URL and checks that u may enter it.
// It returns the course (also when u may not enter it: 403), the HTTP
// status and, unless it is 200, the reason.
func (s *Server) courseAccess(r *http.Request, u *chat.User) (*chat.Course, int, text) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, http.StatusNotFound, msg("a course id is a positive number")
	}
	if s.cfg.ExternalCourses != nil {
		return s.externalCourseAccess(r, id)
	}
	c, err := s.store.CourseByID(r.Context(), id)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ENOTFOUND:
		return nil, http.StatusNotFound, msg("there is no course %d", id)
	default:
		s.log.Error("web: course lookup", "course", id, "err", err)
		return nil, http.StatusServiceUnavailable, msg("the course database is unavailable, try again later")
	}
	ok, err := s.store.CanEnterCourse(r.Context(), id, u.ID)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ENOTFOUND:
		return nil, http.StatusNotFound, msg("there is no course %d", id)
	default:
		s.log.Error("web: course access", "course", id, "err", err)
		return nil, http.StatusServiceUnavailable, msg("the course database is unavailable, try again later")
	}
	if !ok {
		return c, http.StatusForbidden, msg("only the course's owner and its enrolled students may enter this course's chat room")
	}
	return c, http.StatusOK, text{}
}

// externalCourseAccess is courseAccess when the external site decides
// the course rooms (Config.ExternalCourses): the course must exist there
// and the request's external user must be allowed in by it. A user signed
// in with a chatd session is refused: the external site knows nothing of
// chatd's accounts.
func (s *Server) externalCourseAccess(r *http.Request, id int64) (*chat.Course, int, text) {
	sess := sessionFromContext(r.Context())
	if sess == nil || sess.External == "" {
		return nil, http.StatusForbidden, plain("course rooms on this server belong to the Django site: sign in there to enter them")
	}
	c, err := s.cfg.ExternalCourses.Course(r.Context(), id)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ENOTFOUND:
		return nil, http.StatusNotFound, msg("there is no course %d", id)
	default:
		s.log.Error("web: external course lookup", "course", id, "err", err)
		return nil, http.StatusServiceUnavailable, msg("the course database is unavailable, try again later")
	}
	ok, err := s.cfg.ExternalCourses.CanEnter(r.Context(), id, sess.ExternalID)
	if err != nil {
		s.log.Error("web: external course access", "course", id, "err", err)
		return nil, http.StatusServiceUnavailable, msg("the course database is unavailable, try again later")
	}
	if !ok {
		return c, http.StatusForbidden, msg("only the course's owner and its enrolled students may enter this course's chat room")
	}
	return c, http.StatusOK, text{}
}

// statusTitle is the title of an error page with status.
func statusTitle(status int) text {
	switch status {
	case http.StatusNotFound:
		return msg("Not found")
	case http.StatusForbidden:
		return msg("Access denied")
	case http.StatusBadRequest:
		return msg("Bad request")
	case http.StatusServiceUnavailable:
		return msg("Service unavailable")
	}
	return msg("Something went wrong")
}

// roomRefused shows why a room page cannot be shown. A student who is
// not (or no longer) enrolled is told so, with the course and its
// teacher, instead of a bare "Access denied".
func (s *Server) roomRefused(w http.ResponseWriter, r *http.Request, c *chat.Course, status int, reason text) {
	if status == http.StatusForbidden && c != nil {
		s.errorPageWith(w, r, status, msg("You are not enrolled in this course"),
			msg("You are not (or no longer) a student of “%s”, so you cannot enter its chat room. Only its teacher, %s, and its enrolled students can. If you think this is a mistake, ask the teacher.",
				c.Title, s.personName(r, c.OwnerID, c.OwnerUsername)),
			&pageAction{Path: "/courses/", Label: s.localizer(r).T("My courses")})
		return
	}
	s.errorPage(w, r, status, statusTitle(status), text{key: reason.key, args: reason.args, sentence: true})
}

// personName returns how a person is named on a page: their display name
// and username, or the username alone.
func (s *Server) personName(r *http.Request, id int64, username string) string {
	u, err := s.store.UserByID(r.Context(), id)
	if err != nil || u.DisplayName == "" || u.DisplayName == u.Username {
		return username
	}
	return u.DisplayName + " (" + u.Username + ")"
}

// handleCourses lists the courses the user owns or is enrolled in.
func (s *Server) handleCourses(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	if s.cfg.ExternalCourses != nil {
		// The external site keeps the courses; chatd has no list of them.
		s.render(w, r, http.StatusOK, "courses.html", map[string]any{"External": true})
		return
	}
	courses, err := s.store.CoursesForUser(r.Context(), u.ID)
	if err != nil {
		s.log.Error("web: list courses", "user", u.Username, "err", err)
		s.unavailable(w, r)
		return
	}
	s.render(w, r, http.StatusOK, "courses.html", map[string]any{"Courses": courses})
}

// handleCourse shows a course with a link to its chat room.
func (s *Server) handleCourse(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	c, status, reason := s.courseAccess(r, u)
	if status != http.StatusOK {
		s.roomRefused(w, r, c, status, reason)
		return
	}
	s.render(w, r, http.StatusOK, "course.html", map[string]any{
		"Course":   c,
		"RoomPath": "/chat/room/" + strconv.FormatInt(c.ID, 10) + "/",
		"Owner":    c.OwnerID == u.ID,
		"Teacher":  s.personName(r, c.OwnerID, c.OwnerUsername),
	})
}

// handleCourseRoom shows a course's chat room. Its owner is marked as the
// teacher beside their messages.
func (s *Server) handleCourseRoom(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	c, status, reason := s.courseAccess(r, u)
	if status != http.StatusOK {
		s.roomRefused(w, r, c, status, reason)
		return
	}
	id := strconv.FormatInt(c.ID, 10)
	loc := s.localizer(r)
	s.render(w, r, http.StatusOK, "room.html", map[string]any{
		"Room":        chat.CourseRoom(c.ID).Key(),
		"Title":       c.Title + " · " + loc.T("chat"),
		"Heading":     c.Title,
		"Sub":         loc.T("Course chat room · teacher: %s", s.personName(r, c.OwnerID, c.OwnerUsername)),
		"Back":        "/courses/" + id + "/",
		"Teacher":     c.OwnerUsername,
		"SocketPath":  "/ws/chat/room/" + id + "/",
		"HistoryPath": "/api/chat/room/" + id + "/messages",
		"ReadPath":    "/api/chat/room/" + id + "/read",
	})
}

// handleCourseSocket is a course room's WebSocket.
func (s *Server) handleCourseSocket(w http.ResponseWriter, r *http.Request) {
	u := s.signedInSocket(w, r)
	if u == nil {
		return
	}
	c, status, reason := s.courseAccess(r, u)
	if status != http.StatusOK {
		s.reject(w, r, status, reason.English())
		return
	}
	s.acceptMember(w, r, chat.CourseRoom(c.ID), c.ID)
}

// signedInSocket checks a private room's upgrade request (see checkUpgrade)
// and returns its signed-in user, or answers (401 for anonymous) and
// returns nil.
func (s *Server) signedInSocket(w http.ResponseWriter, r *http.Request) *chat.User {
	if !s.checkUpgrade(w, r) {
		return nil
	}
	u := chat.UserFromContext(r.Context())
	if u == nil {
		s.rejectAnonymous(w, r)
	}
	return u
}

// acceptMember upgrades an authorised member's socket into room; courseID
// (0 for none) is re-checked for as long as the socket is open.
func (s *Server) acceptMember(w http.ResponseWriter, r *http.Request, room chat.Room, courseID int64) {
	opts, ok := s.socketOptions(w, r, room)
	if !ok {
		return
	}
	s.socketUser(r, &opts, courseID)
	s.hub.Accept(w, r, opts)
}

// UsersPerPage is how many accounts one page of /users/ lists.
const UsersPerPage = 50

// handleUsers lists the accounts, each with a link to a private room, a
// page at a time: ?after=<username> starts after that account, so however
// many accounts exist a page costs one bounded query.
func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	after := r.URL.Query().Get("after")
	users, err := s.store.ListUsersPage(r.Context(), after, UsersPerPage+1)
	if err != nil {
		s.log.Error("web: list users", "err", err)
		s.unavailable(w, r)
		return
	}
	next := ""
	if len(users) > UsersPerPage {
		users = users[:UsersPerPage]
		next = "/users/?after=" + url.QueryEscape(users[len(users)-1].Username)
	}
	type row struct {
		*chat.User
		Me     bool
		Online bool // in some room, on some process, now
		DMPath string
	}
	rows := make([]row, 0, len(users))
	for _, o := range users {
		rows = append(rows, row{User: o, Me: o.ID == u.ID, Online: s.hub.Online(o.Username), DMPath: "/chat/dm/" + pathEscape(o.Username) + "/"})
	}
	s.render(w, r, http.StatusOK, "users.html", map[string]any{"Users": rows, "Next": next, "Paged": after != "", "Presence": s.hub.PresenceOn()})
}

// dmPeer resolves the other user of a private room. The room is always
// derived from the requester's own identity and the peer's, so a third user
// asking for /chat/dm/bob/ reaches their own room with bob, never
// alice's: no request can name a room between two other people.
func (s *Server) dmPeer(r *http.Request, u *chat.User) (*chat.User, int, text) {
	name := r.PathValue("username")
	if chat.UsernameKey(name) == chat.UsernameKey(u.Username) {
		return nil, http.StatusBadRequest, msg("you cannot open a private room with yourself; pick another user on /users/")
	}
	peer, err := s.store.UserByUsername(r.Context(), name)
	switch chat.ErrorCode(err) {
	case "":
		return peer, http.StatusOK, text{}
	case chat.ENOTFOUND, chat.EINVALID:
		return nil, http.StatusNotFound, msg("there is no user %q", name)
	default:
		s.log.Error("web: user lookup", "err", err)
		return nil, http.StatusServiceUnavailable, msg("the account database is unavailable, try again later")
	}
}

// handleDM shows the private room of the signed-in user and another.
func (s *Server) handleDM(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	peer, status, reason := s.dmPeer(r, u)
	if peer == nil {
		s.roomRefused(w, r, nil, status, reason)
		return
	}
	loc := s.localizer(r)
	who, sub := peer.Username, loc.T("Private: only you and %s see this room", peer.Username)
	if peer.DisplayName != "" && peer.DisplayName != peer.Username {
		who, sub = peer.DisplayName, loc.T("Private: only you and %s (%s) see this room", peer.DisplayName, peer.Username)
	}
	s.render(w, r, http.StatusOK, "room.html", map[string]any{
		"Room":        chat.DMRoom(u.ID, peer.ID).Key(),
		"Title":       loc.T("Chat with %s", who),
		"Heading":     loc.T("Chat with %s", who),
		"Sub":         sub,
		"Back":        "/users/",
		"SocketPath":  "/ws/chat/dm/" + pathEscape(peer.Username) + "/",
		"HistoryPath": "/api/chat/dm/" + pathEscape(peer.Username) + "/messages",
		"ReadPath":    "/api/chat/dm/" + pathEscape(peer.Username) + "/read",
	})
}

// handleDMSocket is a private room's WebSocket.
func (s *Server) handleDMSocket(w http.ResponseWriter, r *http.Request) {
	u := s.signedInSocket(w, r)
	if u == nil {
		return
	}
	peer, status, reason := s.dmPeer(r, u)
	if peer == nil {
		s.reject(w, r, status, reason.English())
		return
	}
	s.acceptMember(w, r, chat.DMRoom(u.ID, peer.ID), 0)
}
