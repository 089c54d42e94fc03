package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/ws"
)

// The admin pages, /manage/: what Django's admin and the educa tutorial's
// course views let staff do, for chatd's accounts, courses and API keys.
//
//   - Administrators (User.IsAdmin: createuser --admin, grantadmin) manage
//     everything: courses (create, rename, delete, members), enrollments,
//     users (deactivate, reactivate, reset password) and API keys.
//   - A course's owner manages that course's enrollments, nothing else.
//   - Anyone else gets 403; anonymous visitors go to the login page.
//
// Every change is a POST form; the CrossOriginProtection around every
// route refuses one sent from another site. A change that succeeds
// redirects (303) back to its page with a one-time notice (a cookie); one
// that fails renders the page again with the reason and a 4xx status.
// Every change is logged with who made it ("by"). Access taken away
// reaches open sockets twice: through the store's revocation, which every
// process polls, and at once through a control message on the channel
// layer (Hub.CloseWhere).

// flashCookie carries a one-time notice to the page a change redirects to.
const flashCookie = "chatd_flash"

// setFlash leaves notice, in the request's language, for the next /manage/
// page this browser shows.
func (s *Server) setFlash(w http.ResponseWriter, r *http.Request, notice text) {
	http.SetCookie(w, &http.Cookie{
		Name:     flashCookie,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(s.localizer(r).Text(notice))),
		Path:     "/manage/",
		MaxAge:   60,
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash returns the notice left for this page, if any, and clears it.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/manage/", MaxAge: -1, HttpOnly: true,
		Secure: s.cfg.Production, SameSite: http.SameSiteLaxMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 500 {
		return ""
	}
	return string(b)
}

// done finishes a successful change: log line, notice, redirect to page.
func (s *Server) done(w http.ResponseWriter, r *http.Request, page string, notice text, action string, attrs ...any) {
	u := chat.UserFromContext(r.Context())
	s.log.Info("manage: "+action, append([]any{"by", u.Username, "peer", r.RemoteAddr}, attrs...)...)
	s.setFlash(w, r, notice)
	http.Redirect(w, r, page, http.StatusSeeOther)
}

// refused logs a change that was refused (for the audit trail too).
func (s *Server) refused(r *http.Request, action string, reason text, attrs ...any) {
	u := chat.UserFromContext(r.Context())
	s.log.Info("manage: refused "+action, append([]any{"by", u.Username, "reason", reason.English()}, attrs...)...)
}

// statusOf maps a store error to a page status: 404, 409, 400, else 503.
func statusOf(err error) int {
	switch chat.ErrorCode(err) {
	case chat.ENOTFOUND:
		return http.StatusNotFound
	case chat.ECONFLICT:
		return http.StatusConflict
	case chat.EINVALID:
		return http.StatusBadRequest
	case chat.EFORBIDDEN:
		return http.StatusForbidden
	}
	return http.StatusServiceUnavailable
}

// parseManageForm reads a /manage/ form, or answers 400.
func (s *Server) parseManageForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The form could not be read."))
		return false
	}
	return true
}

// requireAdmin returns the signed-in administrator, or answers (login
// page for anonymous visitors, 403 for others) and returns nil.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) *chat.User {
	u := s.requireUser(w, r)
	if u == nil {
		return nil
	}
	if !u.IsAdmin {
		s.errorPage(w, r, http.StatusForbidden, msg("Administrators only"),
			msg("Only administrators may use this page. An operator makes one with chatd grantadmin USERNAME."))
		return nil
	}
	return u
}

// courseManager loads the course in the URL for its manager: an
// administrator (admin true) or the course's owner. Others get 403, a
// missing course 404.
func (s *Server) courseManager(w http.ResponseWriter, r *http.Request) (u *chat.User, c *chat.Course, admin bool) {
	u = s.requireUser(w, r)
	if u == nil {
		return nil, nil, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.errorPage(w, r, http.StatusNotFound, msg("Not found"), msg("A course id is a positive number."))
		return nil, nil, false
	}
	c, err = s.store.CourseByID(r.Context(), id)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ENOTFOUND:
		if !u.IsAdmin { // others learn nothing about which courses exist
			s.errorPage(w, r, http.StatusForbidden, msg("Access denied"), msg("Only administrators and a course's owner may manage it."))
			return nil, nil, false
		}
		s.errorPage(w, r, http.StatusNotFound, msg("Not found"), msg("There is no course %s.", strconv.FormatInt(id, 10)))
		return nil, nil, false
	default:
		s.log.Error("web: manage course", "course", id, "err", err)
		s.unavailable(w, r)
		return nil, nil, false
	}
	if !u.IsAdmin && c.OwnerID != u.ID {
		s.errorPage(w, r, http.StatusForbidden, msg("Access denied"), msg("Only administrators and a course's owner may manage it."))
		return nil, nil, false
	}
	return u, c, u.IsAdmin
}

func managePath(c *chat.Course) string { return "/manage/courses/" + strconv.FormatInt(c.ID, 10) + "/" }

// handleManage is /manage/: links for administrators, and the courses the
// user owns (all a course owner may manage).
func (s *Server) handleManage(w http.ResponseWriter, r *http.Request) {
	u := s.requireUser(w, r)
	if u == nil {
		return
	}
	courses, err := s.store.CoursesForUser(r.Context(), u.ID)
	if err != nil {
		s.log.Error("web: manage", "err", err)
		s.unavailable(w, r)
		return
	}
	owned := courses[:0:0]
	for _, c := range courses {
		if c.OwnerID == u.ID {
			owned = append(owned, c)
		}
	}
	if !u.IsAdmin && len(owned) == 0 {
		s.errorPage(w, r, http.StatusForbidden, msg("Access denied"),
			msg("Only administrators and course owners may manage anything here."))
		return
	}
	s.render(w, r, http.StatusOK, "manage.html", map[string]any{"Owned": owned, "Notice": s.takeFlash(w, r)})
}

// handleManageCourses lists every course with a form to create one.
func (s *Server) handleManageCourses(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil {
		return
	}
	s.renderCourses(w, r, http.StatusOK, text{}, nil)
}

func (s *Server) renderCourses(w http.ResponseWriter, r *http.Request, status int, errMsg text, form url.Values) {
	courses, err := s.store.ListCourses(r.Context())
	if err != nil {
		s.log.Error("web: manage courses", "err", err)
		s.unavailable(w, r)
		return
	}
	owner := chat.UserFromContext(r.Context()).Username
	title := ""
	if form != nil {
		title, owner = form.Get("title"), form.Get("owner")
	}
	s.render(w, r, status, "manage_courses.html", map[string]any{
		"Courses": courses, "Error": errMsg, "Notice": s.takeFlash(w, r), "Title": title, "Owner": owner,
		"MaxTitle": chat.MaxCourseTitleLen,
	})
}

// handleCreateCourse creates a course owned by the user named in the form.
func (s *Server) handleCreateCourse(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil || !s.parseManageForm(w, r) {
		return
	}
	title, ownerName := strings.TrimSpace(r.PostForm.Get("title")), strings.TrimSpace(r.PostForm.Get("owner"))
	owner, err := s.store.UserByUsername(r.Context(), ownerName)
	if err != nil {
		reason := msg("There is no user %q to own the course.", ownerName)
		if chat.ErrorCode(err) != chat.ENOTFOUND && chat.ErrorCode(err) != chat.EINVALID {
			s.log.Error("web: manage user lookup", "err", err)
			reason = msg("The database is unavailable; try again.")
		}
		s.refused(r, "create course", reason, "title", title)
		s.renderCourses(w, r, statusOf(err), reason, r.PostForm)
		return
	}
	c := &chat.Course{Title: title, OwnerID: owner.ID}
	if err := s.store.CreateCourse(r.Context(), c); err != nil {
		s.refused(r, "create course", errorText(err), "title", title)
		s.renderCourses(w, r, statusOf(err), errorText(err), r.PostForm)
		return
	}
	s.done(w, r, managePath(c), msg("Created the course %q, owned by %s.", c.Title, owner.Username),
		"created course", "course", c.ID, "title", c.Title, "owner", owner.Username)
}

// handleManageCourse shows a course's owner and students, with the forms
// its manager may use.
func (s *Server) handleManageCourse(w http.ResponseWriter, r *http.Request) {
	_, c, admin := s.courseManager(w, r)
	if c == nil {
		return
	}
	s.renderCourse(w, r, http.StatusOK, c, admin, text{}, "")
}

func (s *Server) renderCourse(w http.ResponseWriter, r *http.Request, status int, c *chat.Course, admin bool, errMsg text, username string) {
	members, err := s.store.CourseMembers(r.Context(), c.ID)
	if err != nil {
		if chat.ErrorCode(err) == chat.ENOTFOUND {
			s.errorPage(w, r, http.StatusNotFound, msg("Not found"), msg("The course was deleted."))
			return
		}
		s.log.Error("web: manage course members", "course", c.ID, "err", err)
		s.unavailable(w, r)
		return
	}
	s.render(w, r, status, "manage_course.html", map[string]any{
		"Course": c, "Members": members, "Admin": admin, "Error": errMsg, "Username": username,
		"Notice": s.takeFlash(w, r), "Path": managePath(c), "RoomPath": "/chat/room/" + strconv.FormatInt(c.ID, 10) + "/",
		"MaxTitle": chat.MaxCourseTitleLen,
	})
}

// handleEnroll enrolls the user named in the form.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	_, c, admin := s.courseManager(w, r)
	if c == nil || !s.parseManageForm(w, r) {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	u, err := s.store.UserByUsername(r.Context(), name)
	var reason text
	status := statusOf(err)
	switch {
	case err == nil && u.ID == c.OwnerID:
		reason, status = msg("%s owns this course: an owner always may enter its room and is not enrolled as a student of their own course.", u.Username), http.StatusConflict
	case err == nil:
		err = s.store.Enroll(r.Context(), c.ID, u.ID)
		status = statusOf(err)
		if chat.ErrorCode(err) == chat.ECONFLICT {
			reason = msg("%s is already enrolled.", u.Username)
		} else if err != nil {
			reason = errorText(err)
		}
	case chat.ErrorCode(err) == chat.ENOTFOUND || chat.ErrorCode(err) == chat.EINVALID:
		reason, status = msg("There is no user %q.", name), http.StatusNotFound
	default:
		reason = errorText(err)
	}
	if reason.key != "" {
		s.refused(r, "enroll", reason, "course", c.ID, "user", name)
		s.renderCourse(w, r, status, c, admin, reason, name)
		return
	}
	s.done(w, r, managePath(c), msg("Enrolled %s.", u.Username), "enrolled", "course", c.ID, "user", u.Username)
}

// handleUnenroll removes the user named in the form from the course; their
// sockets in the course's room close at once, on every process.
func (s *Server) handleUnenroll(w http.ResponseWriter, r *http.Request) {
	_, c, admin := s.courseManager(w, r)
	if c == nil || !s.parseManageForm(w, r) {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	u, err := s.store.UserByUsername(r.Context(), name)
	var reason text
	status := statusOf(err)
	switch {
	case err == nil:
		err = s.store.Unenroll(r.Context(), c.ID, u.ID)
		status = statusOf(err)
		if chat.ErrorCode(err) == chat.ENOTFOUND {
			reason = msg("%s is not enrolled.", u.Username)
		} else if err != nil {
			reason = errorText(err)
		}
	case chat.ErrorCode(err) == chat.ENOTFOUND || chat.ErrorCode(err) == chat.EINVALID:
		reason, status = msg("There is no user %q.", name), http.StatusNotFound
	default:
		reason = errorText(err)
	}
	if reason.key != "" {
		s.refused(r, "unenroll", reason, "course", c.ID, "user", name)
		s.renderCourse(w, r, status, c, admin, reason, "")
		return
	}
	s.closeNow(r.Context(), ws.Control{User: u.Username, Group: chat.CourseRoomKey(c.ID), Reason: "no longer enrolled"})
	s.done(w, r, managePath(c), msg("Unenrolled %s; their open chat sockets in this course's room were closed.", u.Username),
		"unenrolled", "course", c.ID, "user", u.Username)
}

// closeNow closes the sockets ctl selects on every process through the
// channel layer. The store's revocation, already recorded, does the same
// within ACCESS_RECHECK_INTERVAL even if this fails (say Redis is down).
func (s *Server) closeNow(ctx context.Context, ctl ws.Control) {
	ctl.Code = ws.ClosePolicyViolation
	if err := s.hub.CloseWhere(ctx, ctl); err != nil {
		s.log.Warn("web: close sockets at once failed; the revocation poll will close them", "reason", ctl.Reason, "err", err)
	}
}

// handleRenameCourse changes a course's title (administrators).
func (s *Server) handleRenameCourse(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil {
		return
	}
	_, c, _ := s.courseManager(w, r)
	if c == nil || !s.parseManageForm(w, r) {
		return
	}
	title := strings.TrimSpace(r.PostForm.Get("title"))
	if err := s.store.RenameCourse(r.Context(), c.ID, title); err != nil {
		s.refused(r, "rename course", errorText(err), "course", c.ID)
		s.renderCourse(w, r, statusOf(err), c, true, errorText(err), "")
		return
	}
	s.done(w, r, managePath(c), msg("Renamed the course to %q.", title), "renamed course",
		"course", c.ID, "from", c.Title, "to", title)
}

// handleDeleteCourse deletes a course with its enrollments and history
// (administrators); the box "confirm" must be ticked.
func (s *Server) handleDeleteCourse(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil {
		return
	}
	_, c, _ := s.courseManager(w, r)
	if c == nil || !s.parseManageForm(w, r) {
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		s.renderCourse(w, r, http.StatusBadRequest, c, true, msg("Tick the box to confirm that the course, its enrollments and its chat history are to be deleted."), "")
		return
	}
	if err := s.store.DeleteCourse(r.Context(), c.ID); err != nil && chat.ErrorCode(err) != chat.ENOTFOUND {
		s.log.Error("web: delete course", "course", c.ID, "err", err)
		s.unavailable(w, r)
		return
	}
	s.closeNow(r.Context(), ws.Control{Group: chat.CourseRoomKey(c.ID), Reason: "course deleted"})
	s.done(w, r, "/manage/courses/", msg("Deleted the course %q with its enrollments and chat history.", c.Title),
		"deleted course", "course", c.ID, "title", c.Title)
}

// handleManageUsers lists the accounts a page at a time (?after=).
func (s *Server) handleManageUsers(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil {
		return
	}
	s.renderUsers(w, r, http.StatusOK, text{})
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, status int, errMsg text) {
	after := r.URL.Query().Get("after")
	users, err := s.store.ListUsersPage(r.Context(), after, UsersPerPage+1)
	if err != nil {
		s.log.Error("web: manage users", "err", err)
		s.unavailable(w, r)
		return
	}
	next := ""
	if len(users) > UsersPerPage {
		users = users[:UsersPerPage]
		next = "/manage/users/?after=" + url.QueryEscape(users[len(users)-1].Username)
	}
	type row struct {
		*chat.User
		Path string
		Me   bool
	}
	me := chat.UserFromContext(r.Context())
	rows := make([]row, len(users))
	for i, u := range users {
		rows[i] = row{User: u, Path: "/manage/users/" + pathEscape(u.Username) + "/", Me: u.ID == me.ID}
	}
	s.render(w, r, status, "manage_users.html", map[string]any{
		"Users": rows, "Next": next, "Paged": after != "", "Error": errMsg, "Notice": s.takeFlash(w, r),
	})
}

// managedUser loads the account named in the URL for an administrator's
// change, refusing changes to the administrator's own account with self.
func (s *Server) managedUser(w http.ResponseWriter, r *http.Request, action string, self text) *chat.User {
	admin := s.requireAdmin(w, r)
	if admin == nil {
		return nil
	}
	name := r.PathValue("username")
	u, err := s.store.UserByUsername(r.Context(), name)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ENOTFOUND, chat.EINVALID:
		s.renderUsers(w, r, http.StatusNotFound, msg("There is no user %q.", name))
		return nil
	default:
		s.log.Error("web: manage user lookup", "err", err)
		s.unavailable(w, r)
		return nil
	}
	if u.ID == admin.ID {
		s.refused(r, action, self, "user", u.Username)
		s.renderUsers(w, r, http.StatusConflict, self)
		return nil
	}
	return u
}

// handleSetActive deactivates or reactivates an account. Deactivating ends
// its sessions (the store records the revocation) and closes its sockets.
func (s *Server) handleSetActive(active bool) http.HandlerFunc {
	action := "deactivate"
	self := msg("You cannot deactivate your own account here; another administrator can, or an operator with chatd.")
	if active {
		action = "reactivate"
		self = msg("You cannot reactivate your own account here; another administrator can, or an operator with chatd.")
	}
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.managedUser(w, r, action, self)
		if u == nil || !s.parseManageForm(w, r) {
			return
		}
		if err := s.store.SetUserActive(r.Context(), u.ID, active); err != nil {
			s.log.Error("web: set user active", "user", u.Username, "err", err)
			s.unavailable(w, r)
			return
		}
		page := "/manage/users/" + managedPage(r)
		if active {
			s.done(w, r, page, msg("Reactivated %s: they may sign in again.", u.Username), "reactivated user", "user", u.Username)
			return
		}
		s.closeNow(r.Context(), ws.Control{User: u.Username, Reason: "account deactivated"})
		s.done(w, r, page, msg("Deactivated %s: they are signed out everywhere and cannot sign in.", u.Username),
			"deactivated user", "user", u.Username)
	}
}

// managedPage returns the users page to come back to (the form's
// "after", so the list stays on its page).
func managedPage(r *http.Request) string {
	if after := r.PostForm.Get("after"); after != "" {
		return "?after=" + url.QueryEscape(after)
	}
	return ""
}

// resetPasswordLen is the length of a password made by a reset, in
// characters of unpadded URL-safe base64 (6 bits each).
const resetPasswordLen = 16

// handleResetPassword gives an account a new random password, shown once
// to the administrator, and ends the account's sessions.
func (s *Server) handleResetPassword(w http.ResponseWriter, r *http.Request) {
	u := s.managedUser(w, r, "reset the password of",
		msg("You cannot reset the password of your own account here; another administrator can, or an operator with chatd."))
	if u == nil || !s.parseManageForm(w, r) {
		return
	}
	b := make([]byte, resetPasswordLen*6/8)
	_, _ = rand.Read(b)
	pw := base64.RawURLEncoding.EncodeToString(b)
	hash, err := password.Hash(pw)
	if err == nil {
		err = s.store.SetPassword(r.Context(), u.ID, hash)
	}
	if err == nil {
		err = s.store.DeleteUserSessions(r.Context(), u.ID)
	}
	if err != nil {
		s.log.Error("web: reset password", "user", u.Username, "err", err)
		s.unavailable(w, r)
		return
	}
	s.closeNow(r.Context(), ws.Control{User: u.Username, Reason: "signed out everywhere"})
	admin := chat.UserFromContext(r.Context())
	s.log.Info("manage: reset password", "by", admin.Username, "peer", r.RemoteAddr, "user", u.Username)
	s.render(w, r, http.StatusOK, "manage_secret.html", map[string]any{
		"Heading": msg("New password for %s", u.Username),
		"Warning": msg("Copy the password now: it is shown only this once and cannot be read again."),
		"Secret":  pw,
		"Detail":  msg("%s was signed out everywhere. Give them this password; they sign in with it at /accounts/login/.", u.Username),
		"Back":    "/manage/users/",
	})
}

// handleManageKeys lists the API keys with a form to make one.
func (s *Server) handleManageKeys(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil {
		return
	}
	s.renderKeys(w, r, http.StatusOK, text{}, nil)
}

func (s *Server) renderKeys(w http.ResponseWriter, r *http.Request, status int, errMsg text, form url.Values) {
	keys, err := s.store.ListAPIKeys(r.Context())
	if err != nil {
		s.log.Error("web: manage keys", "err", err)
		s.unavailable(w, r)
		return
	}
	name, bot, rooms := "", "", "chat:*"
	if form != nil {
		name, bot, rooms = form.Get("name"), form.Get("bot"), form.Get("rooms")
	}
	s.render(w, r, status, "manage_keys.html", map[string]any{
		"Keys": keys, "Error": errMsg, "Notice": s.takeFlash(w, r), "Name": name, "Bot": bot, "Rooms": rooms,
	})
}

// handleCreateKey makes an API key and shows its secret, this once.
func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	admin := s.requireAdmin(w, r)
	if admin == nil || !s.parseManageForm(w, r) {
		return
	}
	f := r.PostForm
	k := &chat.APIKey{Name: strings.TrimSpace(f.Get("name")), Bot: strings.TrimSpace(f.Get("bot")),
		Rooms: f.Get("rooms"), CreatedBy: admin.Username}
	if k.Bot == "" {
		k.Bot = k.Name
	}
	if err := s.store.CreateAPIKey(r.Context(), k); err != nil {
		if statusOf(err) == http.StatusServiceUnavailable {
			s.log.Error("web: create api key", "err", err)
			s.unavailable(w, r)
			return
		}
		s.refused(r, "create API key", errorText(err), "name", k.Name)
		s.renderKeys(w, r, statusOf(err), errorText(err), f)
		return
	}
	s.log.Info("manage: created API key", "by", admin.Username, "peer", r.RemoteAddr, "key", k.Name, "id", k.ID,
		"bot", chat.BotUser(k.Bot), "rooms", k.Rooms)
	s.render(w, r, http.StatusCreated, "manage_secret.html", map[string]any{
		"Heading": msg("API key %s", k.Name),
		"Warning": msg("Copy the API key now: it is shown only this once and cannot be read again."),
		"Secret":  k.Secret,
		"Detail":  msg("It posts as %s to the rooms %s. Send it as Authorization: Bearer <key>; see docs/api.md.", chat.BotUser(k.Bot), k.Rooms),
		"Example": `curl -X POST -H "Authorization: Bearer ` + k.Secret + `" -d '{"message": "Hello"}' ` + s.exampleBase(r) + "/api/chat/lobby/messages",
		"Back":    "/manage/keys/",
	})
}

// exampleBase is this server's origin as the browser reached it, for the
// curl example.
func (s *Server) exampleBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || s.cfg.Production {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// handleRevokeKey revokes an API key: it stops working at once.
func (s *Server) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) == nil || !s.parseManageForm(w, r) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	keys, err := s.store.ListAPIKeys(r.Context())
	var k *chat.APIKey
	for _, c := range keys {
		if c.ID == id && !c.Revoked() {
			k = c
		}
	}
	if err == nil && k == nil {
		s.renderKeys(w, r, http.StatusNotFound, msg("That key does not exist or was already revoked."), nil)
		return
	}
	if err == nil {
		err = s.store.RevokeAPIKey(r.Context(), k.ID)
	}
	if err != nil && chat.ErrorCode(err) != chat.ENOTFOUND { // ENOTFOUND: revoked meanwhile, as asked
		s.log.Error("web: revoke api key", "key", id, "err", err)
		s.unavailable(w, r)
		return
	}
	s.done(w, r, "/manage/keys/", msg("Revoked the API key %q: it no longer works.", k.Name),
		"revoked API key", "id", k.ID, "key", k.Name)
}

// deactivatedLogin is what a deactivated account sees when it signs in
// with the right password.
var deactivatedLogin = msg("This account is deactivated. Ask an administrator to reactivate it.")
