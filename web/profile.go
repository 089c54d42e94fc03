package web

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	chat "github.com/chatd/chat"
)

// The profile page: a signed-in user changes their display name; a guest
// chooses a nickname.
//
// A guest's identity is its generated name ("guest-" and 10 hex digits of
// a hash of the chatd_guest cookie's secret 192-bit token): nobody can
// forge another browser's, and it needs no server key that every process
// would have to share. The nickname is only what is shown beside the
// guest's messages, with the word "guest"; it lives in the cookie
// chatd_nick, and the server checks it (chat.CheckNickname: reserved
// names, look-alikes of accounts) every time it uses it – each socket
// and each page – so an edited cookie gains nothing, and a nickname that
// an account takes later simply stops being shown.

// NickCookie holds a guest's nickname, base64url-encoded.
const NickCookie = "chatd_nick"

// nickname returns r's guest nickname if it has a valid one, else "".
func (s *Server) nickname(r *http.Request) string {
	c, err := r.Cookie(NickCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 4*chat.MaxNicknameLen || !utf8.Valid(b) {
		return ""
	}
	nick := string(b)
	if err := chat.CheckNickname(r.Context(), s.store, nick); err != nil {
		s.log.Debug("web: guest nickname not used", "nickname", nick, "err", err)
		return ""
	}
	return nick
}

func (s *Server) setNickCookie(w http.ResponseWriter, nick string) {
	c := &http.Cookie{
		Name:     NickCookie,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(nick)),
		Path:     "/",
		MaxAge:   365 * 24 * 3600,
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	}
	if nick == "" {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(w, c)
}

// handleProfile shows the profile page.
func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	u := chat.UserFromContext(r.Context())
	switch {
	case u != nil:
		s.render(w, r, http.StatusOK, "profile.html", map[string]any{"DisplayName": u.DisplayName})
	case s.cfg.RequireLogin:
		s.requireUser(w, r)
	default:
		g := s.guestFor(r, s.ensureGuestCookie(w, r))
		s.render(w, r, http.StatusOK, "profile.html", map[string]any{"Guest": g, "Nickname": g.DisplayName})
	}
}

// handleSaveProfile saves a signed-in user's display name, or a guest's
// nickname ("" removes it), and shows the page again with the outcome.
func (s *Server) handleSaveProfile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The form could not be read."))
		return
	}
	u := chat.UserFromContext(r.Context())
	if u != nil {
		name := strings.TrimSpace(r.PostForm.Get("display_name"))
		data := map[string]any{"DisplayName": name}
		err := s.store.SetDisplayName(r.Context(), u.ID, name)
		switch chat.ErrorCode(err) {
		case "":
			u.DisplayName = name
			data["Saved"] = msg("Saved. Your new messages carry this name.")
			s.log.Info("web: display name changed", "user", u.Username)
			s.render(w, r, http.StatusOK, "profile.html", data)
		case chat.EINVALID:
			data["Error"] = errorText(err)
			s.render(w, r, http.StatusBadRequest, "profile.html", data)
		default:
			s.log.Error("web: set display name", "user", u.Username, "err", err)
			s.unavailable(w, r)
		}
		return
	}
	if s.cfg.RequireLogin {
		s.requireUser(w, r)
		return
	}
	token := s.ensureGuestCookie(w, r)
	nick := chat.NormalizeNickname(r.PostForm.Get("nickname"))
	data := map[string]any{"Nickname": nick}
	status := http.StatusOK
	if nick == "" {
		s.setNickCookie(w, "")
		data["Saved"] = msg("Nickname removed: you are shown with your guest name.")
	} else {
		err := chat.CheckNickname(r.Context(), s.store, nick)
		switch chat.ErrorCode(err) {
		case "":
			s.setNickCookie(w, nick)
			data["Saved"] = msg("Saved. Your nickname is shown next to your messages in this browser, marked as a guest.")
		case chat.EINVALID, chat.ECONFLICT:
			data["Error"] = errorText(err)
			status = http.StatusBadRequest
			if chat.ErrorCode(err) == chat.ECONFLICT {
				status = http.StatusConflict
			}
		default:
			s.log.Error("web: check nickname", "err", err)
			s.unavailable(w, r)
			return
		}
	}
	g := s.guestFor(r, token)
	if status == http.StatusOK {
		g.DisplayName = nick
	}
	data["Guest"] = g
	s.render(w, r, status, "profile.html", data)
}

// fieldNames are the words the chat package's validation messages name a
// field with ("%s is required"); they are translated too.
var fieldNames = []string{"display name", "course title", "nickname"}

// errorText returns a *chat.Error's message for a page, in the reader's
// language: its format is the catalog key, and a field name among its
// arguments is translated with it. The first letter is made a capital and
// a full stop added.
func errorText(err error) text {
	var e *chat.Error
	if !errors.As(err, &e) || e.Format == "" {
		return msg("Something went wrong. Try again.")
	}
	return text{key: e.Format, args: e.Args, sentence: true}
}
