package web

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/ws"
)

// SessionCookie is the name of the cookie that holds the session token.
const SessionCookie = "chatd_session"

// MinPasswordLen is the shortest password sign-up accepts, in characters.
const MinPasswordLen = 8

// maxFormBytes bounds the body of the account forms.
const maxFormBytes = 16 << 10

type sessionKey struct{}

// authSession is the signed-in session of a request.
type authSession struct {
	ID      int64
	Token   string
	Expires time.Time
	// External is the cookie of an external (Django) session when the
	// user signed in there instead; ID and Token are then empty.
	External string
	// ExternalID is the external site's id of that user.
	ExternalID string
}

func sessionFromContext(ctx context.Context) *authSession {
	s, _ := ctx.Value(sessionKey{}).(*authSession)
	return s
}

// withSession reads the session cookie and, for a live session, puts its
// user (chat.NewContextWithUser) and the session in the request's context.
// An unknown or expired token is dropped from the browser. When the store
// cannot be reached the request fails with 503 rather than running as
// anonymous, which could show a signed-in user the wrong page.
func (s *Server) withSession(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(SessionCookie)
		if err != nil || c.Value == "" {
			if r, ok := s.authenticateExternal(w, r); ok {
				next(w, r)
			}
			return
		}
		u, sess, err := s.store.SessionUser(r.Context(), c.Value)
		switch chat.ErrorCode(err) {
		case "":
			ctx := chat.NewContextWithUser(r.Context(), u)
			ctx = context.WithValue(ctx, sessionKey{}, &authSession{ID: sess.ID, Token: c.Value, Expires: sess.ExpiresAt})
			r = r.WithContext(ctx)
		case chat.ENOTFOUND:
			s.clearSessionCookie(w)
			var ok bool
			if r, ok = s.authenticateExternal(w, r); !ok {
				return
			}
		default:
			s.log.Error("web: session lookup", "path", r.URL.Path, "err", err)
			s.unavailable(w, r)
			return
		}
		next(w, r)
	})
}

// unavailable answers 503 when the store fails: a page, or plain text on a
// WebSocket endpoint.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	if strings.HasPrefix(r.URL.Path, "/ws/") {
		s.reject(w, r, http.StatusServiceUnavailable, "the account database is unavailable, try again later")
		return
	}
	s.errorPage(w, r, http.StatusServiceUnavailable, msg("Service unavailable"),
		msg("The account database cannot be reached right now. Try again in a moment."))
}

func (s *Server) setSessionCookie(w http.ResponseWriter, sess *chat.Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    sess.Token,
		Path:     "/",
		Expires:  sess.ExpiresAt,
		MaxAge:   int(time.Until(sess.ExpiresAt).Seconds()),
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	})
}

// safeNext returns next if it is a path on this site, else fallback. Only
// "/path" is accepted: not "//host", "/\host" (which browsers read as
// "//host"), a scheme, or control characters, so ?next= can never send a
// user to another site.
func safeNext(next, fallback string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\") ||
		strings.IndexFunc(next, unicode.IsControl) >= 0 {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return fallback
	}
	return next
}

// loginPath returns the login page's URL that comes back to r's page.
func loginPath(r *http.Request) string {
	return "/accounts/login/?next=" + url.QueryEscape(r.URL.RequestURI())
}

// requireUser returns the signed-in user, or redirects to the login page
// and returns nil.
func (s *Server) requireUser(w http.ResponseWriter, r *http.Request) *chat.User {
	if u := chat.UserFromContext(r.Context()); u != nil {
		return u
	}
	http.Redirect(w, r, loginPath(r), http.StatusFound)
	return nil
}

// clientIP is the client's address for throttling: the connection's, or
// with TrustProxy the last X-Forwarded-For entry, which the proxy appended.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// handleLoginForm shows the login page.
func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next"), "")})
}

// handleLogin checks a username and password and starts a session.
//
// A wrong password and an unknown user give the same message, and an
// unknown user still costs one password verification (VerifyDummy), so
// neither the answer nor its timing tells whether the account exists.
// Failures are counted per (client address, username), per username and
// per address (loginThrottle); at a limit every attempt of that kind, even
// with the right password, answers 429 until the window ends,
// so guessing cannot continue by luck and a correct guess is not confirmed.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The login form could not be read."))
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	pw := r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"), "/chat/")
	data := map[string]any{"Username": username, "Next": safeNext(r.PostForm.Get("next"), "")}
	if username == "" || pw == "" {
		data["Error"] = msg("Enter your username and password.")
		s.render(w, r, http.StatusBadRequest, "login.html", data)
		return
	}
	ip := s.clientIP(r)
	if wait, blocked := s.throttle.Blocked(ip, username); blocked {
		s.logins.throttled.Add(1)
		s.tooManyAttempts(w, r, wait, data)
		return
	}

	u, hash, err := s.store.UserPasswordHash(r.Context(), username)
	ok := false
	switch chat.ErrorCode(err) {
	case "":
		ok, err = password.Verify(pw, hash)
		if err != nil {
			s.log.Error("web: stored password hash unreadable", "user", u.Username, "err", err)
			ok = false
		}
	case chat.ENOTFOUND, chat.EINVALID:
		password.VerifyDummy(pw)
	default:
		s.log.Error("web: login lookup", "err", err)
		s.unavailable(w, r)
		return
	}
	if !ok {
		s.throttle.Fail(ip, username)
		s.logins.failed.Add(1)
		s.log.Info("web: login failed", "username", username, "peer", r.RemoteAddr)
		data["Error"] = msg("Wrong username or password. Both are checked together; the password is case-sensitive.")
		s.render(w, r, http.StatusBadRequest, "login.html", data)
		return
	}
	s.throttle.Succeeded(ip, username)
	if u.Deactivated {
		// Said only to whoever knows the password.
		s.log.Info("web: login refused: account deactivated", "user", u.Username, "peer", r.RemoteAddr)
		data["Error"] = deactivatedLogin
		s.render(w, r, http.StatusForbidden, "login.html", data)
		return
	}
	if password.NeedsRehash(hash) {
		if h, err := password.Hash(pw); err == nil {
			if err := s.store.SetPassword(r.Context(), u.ID, h); err != nil {
				s.log.Warn("web: rehash password", "user", u.Username, "err", err)
			}
		}
	}
	if !s.startSession(w, r, u) {
		return
	}
	s.log.Info("web: login", "user", u.Username, "peer", r.RemoteAddr)
	s.logins.ok.Add(1)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) tooManyAttempts(w http.ResponseWriter, r *http.Request, wait time.Duration, data map[string]any) {
	secs := int(wait.Round(time.Second).Seconds())
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	if n, minutes := waitUnits(wait); minutes {
		data["Error"] = msg("Too many failed sign-in attempts. Wait %d minutes and try again.", n)
	} else {
		data["Error"] = msg("Too many failed sign-in attempts. Wait %d seconds and try again.", n)
	}
	s.render(w, r, http.StatusTooManyRequests, "login.html", data)
}

// waitUnits returns a wait to show: whole seconds up to a minute, else
// whole minutes rounded up (minutes true).
func waitUnits(d time.Duration) (n int, minutes bool) {
	if d <= time.Minute {
		return max(1, int(d.Round(time.Second).Seconds())), false
	}
	return int((d + time.Minute - 1) / time.Minute), true
}

// startSession ends the request's current session, if any, starts one for
// u and sets its cookie. On failure it answers the request and returns false.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u *chat.User) bool {
	if old := sessionFromContext(r.Context()); old != nil {
		s.endSession(r.Context(), old)
	}
	sess, err := s.store.CreateSession(r.Context(), u.ID, s.cfg.SessionTTL)
	if chat.ErrorCode(err) == chat.EFORBIDDEN { // deactivated a moment ago
		s.render(w, r, http.StatusForbidden, "login.html", map[string]any{"Error": deactivatedLogin, "Username": u.Username})
		return false
	}
	if err != nil {
		s.log.Error("web: create session", "user", u.Username, "err", err)
		s.unavailable(w, r)
		return false
	}
	s.setSessionCookie(w, sess)
	return true
}

// endSession deletes a session and closes its sockets on every process.
func (s *Server) endSession(ctx context.Context, sess *authSession) {
	if sess.External != "" {
		return // the external site's to end
	}
	if err := s.store.DeleteSession(ctx, sess.Token); err != nil {
		s.log.Error("web: delete session", "session", sess.ID, "err", err)
	}
	err := s.hub.CloseWhere(ctx, ws.Control{Session: strconv.FormatInt(sess.ID, 10), Code: ws.ClosePolicyViolation, Reason: "logged out"})
	if err != nil {
		s.log.Warn("web: close the session's sockets", "session", sess.ID, "err", err)
	}
}

// handleLogoutForm asks to confirm: logging out changes state, so it is a
// POST, and a plain link (or a prefetch) must not do it.
func (s *Server) handleLogoutForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "logout.html", nil)
}

// handleLogout ends the session, closes its sockets everywhere (1008
// "logged out"; the user's other sessions keep theirs) and clears the cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if sess := sessionFromContext(r.Context()); sess != nil && sess.External != "" {
		s.errorPage(w, r, http.StatusConflict, plain("Signed in through the Django site"),
			plain("You are signed in with your account on the Django site; sign out there, and chatd signs you out too."))
		return
	}
	if sess := sessionFromContext(r.Context()); sess != nil {
		s.endSession(r.Context(), sess)
		s.log.Info("web: logout", "user", chat.UserFromContext(r.Context()).Username, "session", sess.ID)
	}
	s.clearSessionCookie(w)
	http.Redirect(w, r, "/accounts/login/", http.StatusSeeOther)
}

func (s *Server) signupClosed(w http.ResponseWriter, r *http.Request) bool {
	if !s.cfg.DisableSignup {
		return false
	}
	s.errorPage(w, r, http.StatusForbidden, msg("Sign-up is closed"),
		msg("This server does not let visitors create accounts. Ask an administrator for one."))
	return true
}

// handleSignupForm shows the sign-up page.
func (s *Server) handleSignupForm(w http.ResponseWriter, r *http.Request) {
	if s.signupClosed(w, r) {
		return
	}
	s.render(w, r, http.StatusOK, "signup.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next"), "")})
}

// handleSignup creates an account and signs it in.
func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	if s.signupClosed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The sign-up form could not be read."))
		return
	}
	f := r.PostForm
	u := &chat.User{Username: chat.NormalizeUsername(strings.TrimSpace(f.Get("username"))), DisplayName: strings.TrimSpace(f.Get("display_name"))}
	pw, pw2 := f.Get("password"), f.Get("password2")
	data := map[string]any{"Username": u.Username, "DisplayName": u.DisplayName, "Next": safeNext(f.Get("next"), "")}
	fail := func(status int, reason text) {
		data["Error"] = reason
		s.render(w, r, status, "signup.html", data)
	}
	switch err := chat.CheckNewUsername(r.Context(), s.store, u.Username, true); chat.ErrorCode(err) {
	case "":
	case chat.EINVALID:
		fail(http.StatusBadRequest, errorText(err))
		return
	case chat.ECONFLICT:
		fail(http.StatusConflict, msg("That username is taken, or too like an existing one (%s). Choose another one.", s.localizer(r).Text(errorText(err))))
		return
	default:
		s.log.Error("web: check username", "err", err)
		s.unavailable(w, r)
		return
	}
	if err := chat.ValidateDisplayName(u.DisplayName); err != nil {
		fail(http.StatusBadRequest, errorText(err))
		return
	}
	switch {
	case len([]rune(pw)) < MinPasswordLen:
		fail(http.StatusBadRequest, msg("The password must be at least %d characters long.", MinPasswordLen))
		return
	case len(pw) > password.MaxLen:
		fail(http.StatusBadRequest, msg("The password must be at most %d bytes long.", password.MaxLen))
		return
	case pw != pw2:
		fail(http.StatusBadRequest, msg("The two passwords differ."))
		return
	case strings.EqualFold(pw, u.Username):
		fail(http.StatusBadRequest, msg("The password must not be the username."))
		return
	}
	hash, err := password.Hash(pw)
	if err != nil {
		fail(http.StatusBadRequest, msg("That password cannot be used."))
		return
	}
	err = s.store.CreateUser(r.Context(), u, hash)
	switch chat.ErrorCode(err) {
	case "":
	case chat.ECONFLICT:
		fail(http.StatusConflict, msg("That username is taken, or too like an existing one (usernames ignore case, width and look-alike letters). Choose another one."))
		return
	case chat.EINVALID:
		fail(http.StatusBadRequest, errorText(err))
		return
	default:
		s.log.Error("web: create user", "err", err)
		s.unavailable(w, r)
		return
	}
	s.log.Info("web: signup", "user", u.Username, "peer", r.RemoteAddr)
	if !s.startSession(w, r, u) {
		return
	}
	http.Redirect(w, r, safeNext(f.Get("next"), "/chat/"), http.StatusSeeOther)
}
