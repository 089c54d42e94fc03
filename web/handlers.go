package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/ws"
)

// handleIndex shows the room picker. A no-JavaScript form submit arrives as
// ?room=name and is redirected, or answered with the reason it is invalid.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"MaxLen": chat.MaxRoomNameLen}
	if r.URL.Query().Has("room") {
		name := strings.TrimSpace(r.URL.Query().Get("room"))
		rule := s.roomRule(name)
		if rule == "" {
			http.Redirect(w, r, roomPath(name), http.StatusFound)
			return
		}
		data["Room"] = name
		data["Error"] = rule
		s.render(w, r, http.StatusBadRequest, "index.html", data)
		return
	}
	s.render(w, r, http.StatusOK, "index.html", data)
}

const roomNameRule = "A room name is 1 to 100 characters: letters, digits, '_', '-' or '.' (not only dots)."

// roomRule returns why name cannot be a public room here ("" if it can):
// chatd's rule, then the channel layer's (Config.CheckRoom).
func (s *Server) roomRule(name string) string {
	if !chat.ValidRoomName(name) {
		return roomNameRule
	}
	if s.cfg.CheckRoom != nil {
		if err := s.cfg.CheckRoom(name); err != nil {
			return capitalize(err.Error())
		}
	}
	return ""
}

func roomPath(name string) string {
	return "/chat/" + pathEscape(name) + "/"
}

// handleRoom shows a public room's page; with RequireLogin, anonymous
// visitors are sent to the login page first.
func (s *Server) handleRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if rule := s.roomRule(name); rule != "" {
		s.errorPage(w, r, http.StatusNotFound, "No such room", rule)
		return
	}
	if s.cfg.RequireLogin && s.requireUser(w, r) == nil {
		return
	}
	s.ensureGuestCookie(w, r)
	s.render(w, r, http.StatusOK, "room.html", map[string]any{
		"Room":       name,
		"Title":      name,
		"Heading":    "#" + name,
		"SocketPath": "/ws/chat/" + pathEscape(name) + "/",
	})
}

// handlePublicSocket is the WebSocket of a public room.
func (s *Server) handlePublicSocket(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if !s.checkUpgrade(w, r) {
		return
	}
	if rule := s.roomRule(name); rule != "" {
		s.reject(w, r, http.StatusNotFound, "invalid room name: "+rule)
		return
	}
	opts, ok := s.socketOptions(w, r, chat.PublicRoom(name))
	if !ok {
		return
	}
	if !s.socketUser(r, &opts, 0) {
		if s.cfg.RequireLogin {
			s.rejectAnonymous(w, r)
			return
		}
		opts.User = guestFromCookie(r)
	}
	s.hub.Accept(w, r, opts)
}

// checkUpgrade answers requests that are not a WebSocket upgrade from an
// allowed origin. It logs the handshake as Daphne does.
func (s *Server) checkUpgrade(w http.ResponseWriter, r *http.Request) bool {
	if !ws.IsUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "400 Bad Request: this is a WebSocket endpoint; connect with a WebSocket client (Upgrade: websocket)", http.StatusBadRequest)
		return false
	}
	s.log.Info("WebSocket HANDSHAKING", "path", r.URL.Path, "peer", r.RemoteAddr)
	if origin := r.Header.Get("Origin"); origin != "" && !s.cfg.Hosts.AllowsOrigin(origin) {
		s.reject(w, r, http.StatusForbidden, "origin "+origin+" is not allowed (ALLOWED_HOSTS)")
		return false
	}
	return true
}

// reject refuses a WebSocket handshake before the upgrade.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, reason string) {
	s.log.Info("WebSocket REJECT", "path", r.URL.Path, "peer", r.RemoteAddr, "status", status, "reason", reason)
	http.Error(w, http.StatusText(status)+": "+reason, status)
}

// socketOptions reads a socket's options from its URL (?echo=, ?after=)
// for room, or answers 400 with the reason and reports false.
func (s *Server) socketOptions(w http.ResponseWriter, r *http.Request, room chat.Room) (ws.JoinOptions, bool) {
	opts := ws.JoinOptions{Group: room.Key(), Room: room.Key(), After: -1, ClientIP: s.clientIP(r)}
	if room.Kind == chat.RoomPublic {
		opts.Room = room.Name
	}
	echo, ok := parseEcho(r)
	if !ok {
		s.reject(w, r, http.StatusBadRequest, "echo must be 1, 0, true or false")
		return opts, false
	}
	opts.Echo = echo
	if r.URL.Query().Has("after") {
		if !s.hub.Node().History() {
			s.reject(w, r, http.StatusBadRequest, "this server keeps no history (HISTORY=off), so ?after= cannot resume")
			return opts, false
		}
		after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		if err != nil || after < 0 {
			s.reject(w, r, http.StatusBadRequest, "after must be a whole number >= 0 (the last seq the client has)")
			return opts, false
		}
		opts.After = after
	}
	return opts, true
}

// parseEcho reads the per-connection echo option; nil means the default.
func parseEcho(r *http.Request) (*bool, bool) {
	if !r.URL.Query().Has("echo") {
		return nil, true
	}
	var v bool
	switch strings.ToLower(r.URL.Query().Get("echo")) {
	case "1", "true", "yes", "on":
		v = true
	case "0", "false", "no", "off":
		v = false
	default:
		return nil, false
	}
	return &v, true
}

// GuestCookie holds a guest's secret token: a guest's name, and the key
// under which its message ids are idempotent, derive from it, so a guest
// keeps one name per browser across reloads, reconnects and server
// restarts, and a retried message is stored once.
const GuestCookie = "chatd_guest"

// guestTokenBytes is the size of a guest token.
const guestTokenBytes = 24

// guestFromCookie returns the guest of r's guest cookie, or a new guest
// with a name of its own when there is none (a client that is not a
// browser, or one that refuses cookies).
func guestFromCookie(r *http.Request) *chat.User {
	if c, err := r.Cookie(GuestCookie); err == nil {
		if name, ok := guestName(c.Value); ok {
			return &chat.User{Username: name, DisplayName: name}
		}
	}
	return guest()
}

// guestName derives a guest's name from its token: "guest-" and 10 hex
// digits of the token's SHA-256. Only the holder of the token has the name:
// finding another token with the same 40 bits takes about 2^40 hashes.
// Names of accounts can never start with "guest-" (see chat.ValidateUsername
// and sign-up), so no account can speak as a guest.
func guestName(token string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != guestTokenBytes {
		return "", false
	}
	sum := sha256.Sum256(b)
	return "guest-" + hex.EncodeToString(sum[:5]), true
}

// ensureGuestCookie gives an anonymous visitor of a room page a guest
// token (HttpOnly, a year), unless it has one.
func (s *Server) ensureGuestCookie(w http.ResponseWriter, r *http.Request) {
	if chat.UserFromContext(r.Context()) != nil {
		return
	}
	if c, err := r.Cookie(GuestCookie); err == nil {
		if _, ok := guestName(c.Value); ok {
			return
		}
	}
	b := make([]byte, guestTokenBytes)
	_, _ = rand.Read(b)
	http.SetCookie(w, &http.Cookie{
		Name:     GuestCookie,
		Value:    base64.RawURLEncoding.EncodeToString(b),
		Path:     "/",
		MaxAge:   365 * 24 * 3600,
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	})
}

// guest returns a new anonymous user with a random name, for a socket
// without a guest cookie.
func guest() *chat.User {
	b := make([]byte, guestTokenBytes)
	_, _ = rand.Read(b)
	name, _ := guestName(base64.RawURLEncoding.EncodeToString(b))
	return &chat.User{Username: name, DisplayName: name}
}

// handleHealth is the liveness check: 200 while the process serves.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.writeHealth(w, http.StatusOK)
}

// handleReady is the readiness check: 503 while the channel layer is down
// or the server is draining, so a load balancer sends no new clients.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	if s.hub.LayerErr() != nil || s.hub.Closing() || s.hub.Node().Err() != nil || s.hub.LayerFlapping() != nil {
		status = http.StatusServiceUnavailable
	}
	s.writeHealth(w, status)
}

func (s *Server) writeHealth(w http.ResponseWriter, status int) {
	st := s.hub.Stats()
	body := map[string]any{
		"status":      "ok",
		"layer":       "ok",
		"connections": st.Connections,
		"rooms":       st.Rooms,
		"version":     s.cfg.Version,
	}
	if err := s.hub.LayerErr(); err != nil {
		body["status"], body["layer"] = "degraded", err.Error()
	} else if err := s.hub.LayerFlapping(); err != nil {
		body["status"], body["layer"] = "degraded", err.Error()
	}
	body["store"] = "ok"
	if err := s.hub.Node().Err(); err != nil {
		body["status"], body["store"] = "degraded", "unavailable: "+err.Error()
	}
	if s.hub.Closing() {
		body["status"] = "draining"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/ws/") {
		http.Error(w, "404 Not Found: no WebSocket endpoint at "+r.URL.Path, http.StatusNotFound)
		return
	}
	s.errorPage(w, r, http.StatusNotFound, "Page not found", "There is nothing at "+r.URL.Path+".")
}
