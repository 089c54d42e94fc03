package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/ws"
)

// ExternalAuth is a second source of signed-in users beside chatd's own
// sessions: a Django site's (see package djangoauth and docs/django.md). A
// request without a valid chatd session but with the external cookie is
// that external user; their sockets are re-checked every
// Config.ExternalRecheck and closed once the external session ends
// (logout, password change, inactive account).
type ExternalAuth interface {
	// CookieName is the external session's cookie (Django: sessionid).
	CookieName() string
	// Authenticate returns the external session in cookie. An error with
	// code chat.EUNAUTHORIZED means there is no valid session; any other
	// error is a failure to check.
	Authenticate(ctx context.Context, cookie string) (*ExternalSession, error)
}

// ExternalSession is a valid external session.
type ExternalSession struct {
	User    *chat.User // the chatd account
	ID      string     // the user's id on the external site (Django: the primary key)
	Expires time.Time  // when the session ends (zero: unknown)
}

// ExternalCourses, if configured, decide the course rooms instead of the
// store's courses: a Django site's courses and enrolment
// (DJANGO_COURSE_QUERY). Only users signed in through ExternalAuth may
// then enter a course room; the answer for each is the external site's.
type ExternalCourses interface {
	// Course returns course id (its title, and its owner's name if
	// known), or an error with code chat.ENOTFOUND.
	Course(ctx context.Context, id int64) (*chat.Course, error)
	// CanEnter reports whether the external user externalID (an
	// ExternalSession.ID) may enter course id's room.
	CanEnter(ctx context.Context, id int64, externalID string) (bool, error)
}

// externalPrefix starts the socket session name of external sessions.
const externalPrefix = "ext:"

// externalID names an external session without revealing its cookie: it
// travels in control messages and logs.
func externalID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:12])
}

// externalSessions are the external sessions with sockets on this
// process, for the periodic re-check.
type externalSessions struct {
	mu sync.Mutex
	m  map[string]externalEntry // externalID -> entry; guarded by mu
}

type externalEntry struct {
	cookie string
	userID int64
	added  time.Time
}

func (e *externalSessions) add(id, cookie string, userID int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]externalEntry)
	}
	e.m[id] = externalEntry{cookie: cookie, userID: userID, added: time.Now()}
}

// authenticateExternal returns the request's external user, if any. It
// reports false when it has answered the request (503).
func (s *Server) authenticateExternal(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	ext := s.cfg.External
	if ext == nil {
		return r, true
	}
	c, err := r.Cookie(ext.CookieName())
	if err != nil || c.Value == "" {
		return r, true
	}
	es, err := ext.Authenticate(r.Context(), c.Value)
	switch chat.ErrorCode(err) {
	case "":
		ctx := chat.NewContextWithUser(r.Context(), es.User)
		ctx = context.WithValue(ctx, sessionKey{}, &authSession{External: c.Value, ExternalID: es.ID, Expires: es.Expires})
		return r.WithContext(ctx), true
	case chat.EUNAUTHORIZED:
		return r, true
	default:
		s.log.Error("web: external session lookup", "path", r.URL.Path, "err", err)
		s.unavailable(w, r)
		return r, false
	}
}

// recheckExternal is the Recheck of a socket of an external session.
func (s *Server) recheckExternal(cookie string, userID, courseID int64) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		es, err := s.cfg.External.Authenticate(ctx, cookie)
		if err != nil {
			return err
		}
		if es.User.ID != userID {
			return chat.Errorf(chat.EUNAUTHORIZED, "signed in as someone else")
		}
		if courseID == 0 {
			return nil
		}
		var ok bool
		if s.cfg.ExternalCourses != nil {
			ok, err = s.cfg.ExternalCourses.CanEnter(ctx, courseID, es.ID)
		} else {
			ok, err = s.store.CanEnterCourse(ctx, courseID, userID)
		}
		switch {
		case chat.ErrorCode(err) == chat.ENOTFOUND:
			return chat.Errorf(chat.ENOTFOUND, "course deleted")
		case err != nil:
			return err
		case !ok:
			return chat.Errorf(chat.EFORBIDDEN, noLongerEnrolled)
		}
		return nil
	}
}

// noLongerEnrolled is the close reason of a course room's socket whose
// user may no longer enter it.
const noLongerEnrolled = "no longer enrolled"

// runExternalRecheck re-checks the external sessions of this process's
// open sockets every ExternalRecheck, and closes (1008) the sockets of
// those that ended, on every process. With ExternalCourses it also asks
// the external site again about every course room those sessions have
// sockets in, and closes the sockets of a room the user may no longer
// enter ("no longer enrolled").
func (s *Server) runExternalRecheck(ctx context.Context) {
	if s.cfg.External == nil {
		return
	}
	t := time.NewTicker(s.cfg.ExternalRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		open := s.hub.OpenSessionGroups()
		s.ext.mu.Lock()
		check := make(map[string]externalEntry, len(s.ext.m))
		for id, e := range s.ext.m {
			switch {
			case open[externalPrefix+id] != nil:
				check[id] = e
			case time.Since(e.added) > time.Minute:
				delete(s.ext.m, id) // its sockets are gone
			}
		}
		s.ext.mu.Unlock()
		enrolled := make(map[courseUser]bool) // this round's answers
		for id, e := range check {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			es, err := s.cfg.External.Authenticate(cctx, e.cookie)
			cancel()
			reason := ""
			switch {
			case err == nil && es.User.ID != e.userID:
				reason = "signed in as someone else"
			case err == nil:
				s.recheckExternalCourses(ctx, id, es, open[externalPrefix+id], enrolled)
				continue
			case chat.ErrorCode(err) == chat.EUNAUTHORIZED:
				reason = chat.ErrorMessage(err)
			default:
				if ctx.Err() == nil {
					s.log.Warn("web: cannot re-check an external session; will retry", "err", err)
				}
				continue
			}
			s.ext.mu.Lock()
			delete(s.ext.m, id)
			s.ext.mu.Unlock()
			s.log.Info("web: external session ended; closing its sockets", "session", id, "reason", reason)
			if err := s.hub.CloseWhere(ctx, ws.Control{Session: externalPrefix + id, Code: ws.ClosePolicyViolation, Reason: reason}); err != nil {
				s.log.Warn("web: close the external session's sockets", "err", err)
			}
		}
	}
}

// courseUser is a course and an external user.
type courseUser struct {
	course int64
	user   string
}

// recheckExternalCourses asks ExternalCourses again whether the user of
// the external session id may enter each course room in groups (the
// session's rooms with sockets here) and closes the session's sockets in
// those it may not. enrolled caches answers within one round.
func (s *Server) recheckExternalCourses(ctx context.Context, id string, es *ExternalSession, groups map[string]bool, enrolled map[courseUser]bool) {
	if s.cfg.ExternalCourses == nil {
		return
	}
	for g := range groups {
		r, ok := chat.ParseRoomKey(g)
		if !ok || r.Kind != chat.RoomCourse {
			continue
		}
		k := courseUser{r.CourseID, es.ID}
		ok, seen := enrolled[k]
		if !seen {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			ok, err = s.cfg.ExternalCourses.CanEnter(cctx, r.CourseID, es.ID)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("web: cannot re-check a course's enrolment; will retry", "course", r.CourseID, "err", err)
				}
				continue
			}
			enrolled[k] = ok
		}
		if ok {
			continue
		}
		s.log.Info("web: no longer enrolled on the external site; closing the course room's sockets", "session", id, "user", es.User.Username, "course", r.CourseID)
		if err := s.hub.CloseWhere(ctx, ws.Control{Session: externalPrefix + id, Group: g, Code: ws.ClosePolicyViolation, Reason: noLongerEnrolled}); err != nil {
			s.log.Warn("web: close the course room's sockets", "err", err)
		}
	}
}
