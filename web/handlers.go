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

// roomNameRule is said wherever a room name is refused.
var roomNameRule = msg("A room name is 1 to 100 characters: letters, digits, '_', '-' or '.' (not only dots).")

// roomRule returns why name cannot be a public room here, and false; or true:
// chatd's rule, then the channel layer's (Config.CheckRoom).
func (s *Server) roomRule(name string) (text, bool) {
	if !chat.ValidRoomName(name) {
		return roomNameRule, false
	}
	if s.cfg.CheckRoom != nil {
		if err := s.cfg.CheckRoom(name); err != nil {
			return plain(asSentence(err.Error())), false
		}
	}
	return text{}, true
}

func roomPath(name string) string {
	return "/chat/" + pathEscape(name) + "/"
}

// handleRoom shows a public room's page; with RequireLogin, anonymous
// visitors are sent to the login page first.
func (s *Server) handleRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if rule, ok := s.roomRule(name); !ok {
		s.errorPage(w, r, http.StatusNotFound, msg("No such room"), rule)
		return
	}
	if s.cfg.RequireLogin && s.requireUser(w, r) == nil {
		return
	}
	data := map[string]any{
		"Room":        name,
		"Title":       name,
		"Heading":     "#" + name,
		"Public":      true,
		"SocketPath":  "/ws/chat/" + pathEscape(name) + "/",
		"HistoryPath": "/api/chat/" + pathEscape(name) + "/messages",
		"ReadPath":    "/api/chat/" + pathEscape(name) + "/read",
	}
	if token := s.ensureGuestCookie(w, r); token != nil {
		data["Guest"] = s.guestFor(r, token)
	}
	s.render(w, r, http.StatusOK, "room.html", data)
}

// handlePublicSocket is the WebSocket of a public room.
func (s *Server) handlePublicSocket(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if !s.checkUpgrade(w, r) {
		return
	}
	if rule, ok := s.roomRule(name); !ok {
		s.reject(w, r, http.StatusNotFound, "invalid room name: "+rule.English())
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
		opts.User = s.guest(r)
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

// guestToken returns the token of r's guest cookie, or nil.
func guestToken(r *http.Request) []byte {
	c, err := r.Cookie(GuestCookie)
	if err != nil {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != guestTokenBytes {
		return nil
	}
	return b
}

// ensureGuestCookie gives an anonymous visitor of a room page a guest
// token (HttpOnly, a year), unless it has one, and returns the visitor's
// token (nil for a signed-in user).
func (s *Server) ensureGuestCookie(w http.ResponseWriter, r *http.Request) []byte {
	if chat.UserFromContext(r.Context()) != nil {
		return nil
	}
	if token := guestToken(r); token != nil {
		return token
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
	return b
}

// guestName derives a guest's name from its token and an attempt number:
// "guest-" and 10 hex digits of SHA-256(token, attempt). Only the holder of
// the token has the name (another token with the same 40 bits takes about
// 2^40 hashes), and the same token always gives the same names in the same
// order, so a guest keeps its name.
func guestName(token []byte, attempt int) string {
	h := sha256.New()
	h.Write(token)
	h.Write([]byte{byte(attempt)})
	return "guest-" + hex.EncodeToString(h.Sum(nil)[:5])
}

// guest returns the anonymous user of r: named from its guest cookie, or
// from a random token when it has none (a client that is not a browser, or
// refuses cookies), which then gets a new name on every connection. No
// account can be named like a guest: chat.ValidateUsername reserves such
// names, and a name an account of an older chatd holds (or imitates) is
// skipped here – the next attempt's name is used – so a guest's page never
// shows someone else's messages as "Me". If the store cannot be asked, the
// name is used: only such an old account could clash with it. Its
// display name is its nickname, if it chose one that still passes
// chat.CheckNickname (profile.go).
func (s *Server) guest(r *http.Request) *chat.User { return s.guestFor(r, guestToken(r)) }

// guestFor is guest with the guest token given (nil: a random one), for a
// page that has just set the cookie.
func (s *Server) guestFor(r *http.Request, token []byte) *chat.User {
	if token == nil {
		token = make([]byte, guestTokenBytes)
		_, _ = rand.Read(token)
	}
	var name string
	for attempt := range 8 {
		name = s.guestName(token, attempt)
		_, err := s.store.UserByUsername(r.Context(), name)
		if chat.ErrorCode(err) == chat.ENOTFOUND || chat.ErrorCode(err) == chat.EINVALID {
			break
		} else if err != nil {
			s.log.Debug("web: guest name not checked", "err", err)
			break
		}
	}
	return &chat.User{Username: name, DisplayName: s.nickname(r)}
}

// handleHealth is the liveness check: 200 while the process serves.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.writeHealth(w, r, http.StatusOK)
}

// handleReady is the readiness check: 503 while the channel layer or the
// store is down, the layer's subscription keeps dropping, or the server is
// draining, so a load balancer sends no new clients.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	if s.hub.LayerErr() != nil || s.hub.Closing() || s.hub.Node().Err() != nil || s.hub.LayerFlapping() != nil {
		status = http.StatusServiceUnavailable
	}
	s.writeHealth(w, r, status)
}

// writeHealth answers a health check: {"status": "ok" | "degraded" |
// "draining"} for everyone, and the counts, the version and the layer's
// state (whose error names the Redis address) only where an operator
// asks (healthDetails).
func (s *Server) writeHealth(w http.ResponseWriter, r *http.Request, status int) {
	body := map[string]any{"status": "ok"}
	layerErr := s.hub.LayerErr()
	if layerErr == nil {
		layerErr = s.hub.LayerFlapping()
	}
	storeErr := s.hub.Node().Err()
	if layerErr != nil || storeErr != nil {
		body["status"] = "degraded"
	}
	if s.hub.Closing() {
		body["status"] = "draining"
	}
	if s.healthDetails(r) {
		st := s.hub.Stats()
		body["layer"], body["store"], body["connections"], body["rooms"], body["version"] = "ok", "ok", st.Connections, st.Rooms, s.cfg.Version
		if layerErr != nil {
			body["layer"] = layerErr.Error()
		}
		if storeErr != nil {
			body["store"] = "unavailable: " + storeErr.Error()
		}
		if s.cfg.BridgeStats != nil {
			body["channels_redis"] = s.cfg.BridgeStats()
		}
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
	s.errorPage(w, r, http.StatusNotFound, msg("Page not found"), msg("There is nothing at %s.", r.URL.Path))
}
