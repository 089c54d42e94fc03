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
	// Authenticate returns the chatd account of the external session in
	// cookie and when that session ends (zero: unknown). An error with
	// code chat.EUNAUTHORIZED means there is no valid session; any other
	// error is a failure to check.
	Authenticate(ctx context.Context, cookie string) (*chat.User, time.Time, error)
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
	u, expires, err := ext.Authenticate(r.Context(), c.Value)
	switch chat.ErrorCode(err) {
	case "":
		ctx := chat.NewContextWithUser(r.Context(), u)
		ctx = context.WithValue(ctx, sessionKey{}, &authSession{External: c.Value, Expires: expires})
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
		u, _, err := s.cfg.External.Authenticate(ctx, cookie)
		if err != nil {
			return err
		}
		if u.ID != userID {
			return chat.Errorf(chat.EUNAUTHORIZED, "signed in as someone else")
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

// runExternalRecheck re-checks the external sessions of this process's
// open sockets every ExternalRecheck, and closes (1008) the sockets of
// those that ended, on every process.
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
		open := s.hub.OpenSessions()
		s.ext.mu.Lock()
		check := make(map[string]externalEntry, len(s.ext.m))
		for id, e := range s.ext.m {
			switch {
			case open[externalPrefix+id]:
				check[id] = e
			case time.Since(e.added) > time.Minute:
				delete(s.ext.m, id) // its sockets are gone
			}
		}
		s.ext.mu.Unlock()
		for id, e := range check {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			u, _, err := s.cfg.External.Authenticate(cctx, e.cookie)
			cancel()
			reason := ""
			switch {
			case err == nil && u.ID != e.userID:
				reason = "signed in as someone else"
			case err == nil:
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
