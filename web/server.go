// Package web is chatd's HTTP side: pages, static files, the WebSocket
// endpoint's checks (host, origin, room) before the hub takes over, health
// endpoints and middleware. Every route is in routes.go.
package web

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/budget"
	"github.com/chatd/chat/ws"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the web layer needs from the operator's configuration.
// Zero fields take the defaults documented on each field.
type Config struct {
	Production bool   // Secure cookies, stricter defaults
	Hosts      *Hosts // ALLOWED_HOSTS (already defaulted by the caller)
	Logger     *slog.Logger
	Version    string

	// Store keeps accounts, sessions and courses; required.
	Store chat.Store
	// SessionTTL is how long a login lasts; default 14 days (SESSION_TTL).
	SessionTTL time.Duration
	// DisableSignup turns /accounts/signup/ off (ALLOW_SIGNUP=false).
	DisableSignup bool
	// RequireLogin keeps anonymous guests out of public rooms
	// (ALLOW_ANONYMOUS=false).
	RequireLogin bool
	// RecheckInterval is how often the store's access revocations (logout,
	// unenroll, deleted courses and accounts, from any process) are polled
	// and applied to open sockets; default 1 s (ACCESS_RECHECK_INTERVAL).
	RecheckInterval time.Duration
	// SweepInterval is how often expired sessions are deleted; default 1 h.
	SweepInterval time.Duration
	// LoginFailures failed logins for one username from one client
	// address, LoginUserFailures for one username from any address, or
	// LoginIPFailures from one address for any username, within LoginWindow,
	// make further attempts of that kind answer 429 until the window has
	// passed; defaults 5, 20, 100 and 5 minutes (see loginThrottle).
	LoginFailures     int
	LoginUserFailures int
	LoginIPFailures   int
	LoginWindow       time.Duration
	// SignupLimit sign-up attempts per client address per SignupWindow
	// (a bucket that refills steadily) are allowed, then 429; defaults 20
	// and 1 hour; a negative SignupLimit turns the throttle off.
	SignupLimit  int
	SignupWindow time.Duration
	// BodyTimeout bounds the time to read a request's body (408 after it),
	// RequestTimeout a whole request; defaults 10 s and 30 s. WebSocket
	// upgrades are exempt.
	BodyTimeout    time.Duration
	RequestTimeout time.Duration
	// Now is the clock of the login and sign-up throttles; default
	// time.Now. Tests set their own and advance it instead of sleeping.
	Now func() time.Time
	// APIRateLimit is how many messages a second one API key may post
	// through the publish API (API_RATE_LIMIT), in bursts of APIRateBurst
	// (API_RATE_BURST); a batch counts one message per room, and may name
	// no more rooms than the burst. Defaults 10 and 100; a negative
	// APIRateLimit turns the limit off. Counted per process, on Now.
	APIRateLimit float64
	APIRateBurst int
	// External, if not nil, is a second source of signed-in users (a
	// Django site's sessions); ExternalRecheck is how often their open
	// sockets are checked again, default 30 s.
	External        ExternalAuth
	ExternalRecheck time.Duration
	// ExternalCourses, if not nil, decide course rooms instead of the
	// store's courses: the external site's courses and enrolment, for
	// users signed in through External (DJANGO_COURSE_QUERY). Open
	// course-room sockets are asked about again every ExternalRecheck.
	ExternalCourses ExternalCourses
	// CheckRoom, if not nil, refuses public room names that the channel
	// layer cannot carry, with a reason for the user: the channels_redis
	// layer allows only names that are valid Django group names.
	CheckRoom func(name string) error
	// TrustProxy takes the client's IP, for the throttles and the
	// per-address connection and message limits, from the last
	// X-Forwarded-For entry (set by a reverse proxy such as Caddy) instead
	// of the connection's address (TRUST_PROXY).
	TrustProxy bool
	// HealthDetails shows every client of /healthz and /readyz the counts,
	// the version and the channel layer's error (which names the Redis
	// address). Without it only requests from the loopback interface that
	// came through no proxy see them; others get the status alone
	// (HEALTH_DETAILS). Status codes are the same either way.
	HealthDetails bool
	// Language is the language of visitors who chose none and whose
	// browser asks for none that chatd speaks: "en" (the default), "es"
	// or "pt" (LANGUAGE).
	Language string
	// UnreadPoll is how often a signed-in visitor's pages ask for their
	// unread counts (the badge in the header, the counts on /chat/);
	// default 20 s (UNREAD_POLL_INTERVAL).
	UnreadPoll time.Duration
	// BridgeStats, if not nil, returns counters shown with the details of
	// /healthz and /readyz as "channels_redis" (the Django bridge's).
	BridgeStats func() any
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Hosts == nil {
		c.Hosts = DevelopmentHosts()
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 14 * 24 * time.Hour
	}
	if c.RecheckInterval <= 0 {
		c.RecheckInterval = time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Hour
	}
	if c.LoginFailures <= 0 {
		c.LoginFailures = 5
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 5 * time.Minute
	}
	if c.LoginUserFailures <= 0 {
		c.LoginUserFailures = 20
	}
	if c.LoginIPFailures <= 0 {
		c.LoginIPFailures = 100
	}
	if c.SignupLimit == 0 {
		c.SignupLimit = 20
	}
	if c.SignupWindow <= 0 {
		c.SignupWindow = time.Hour
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.APIRateLimit == 0 {
		c.APIRateLimit = 10
	}
	if c.APIRateBurst <= 0 {
		c.APIRateBurst = 100
	}
	if c.ExternalRecheck <= 0 {
		c.ExternalRecheck = 30 * time.Second
	}
	if c.Language == "" {
		c.Language = "en"
	}
	if c.UnreadPoll <= 0 {
		c.UnreadPoll = 20 * time.Second
	}
}

// Server serves chatd's HTTP routes.
type Server struct {
	cfg      Config
	log      *slog.Logger
	hub      *ws.Hub
	store    chat.Store
	throttle *loginThrottle
	csrf     *http.CrossOriginProtection
	// signups throttles sign-ups per client address (nil: off);
	// signupSlots holds one token per sign-up in progress (limits.go).
	signups     *budget.Limiter
	signupSlots chan struct{}
	// apiBudget limits each API key's messages (nil: no limit); keyed by
	// the key's id.
	apiBudget *budget.Limiter
	pages     map[string]*template.Template
	ext       externalSessions // external sessions with sockets here
	mux       *http.ServeMux
	tr        *translations // the message catalog (i18n.go)

	guestName func(token []byte, attempt int) string // guestName; tests replace it
	logins    loginCounts                            // for /metrics (metrics.go)
}

// NewServer returns chatd's HTTP handler.
func NewServer(cfg Config, hub *ws.Hub) (*Server, error) {
	cfg.setDefaults()
	if cfg.Store == nil {
		return nil, errors.New("web: Config.Store is required")
	}
	tr, err := loadTranslations(cfg.Language)
	if err != nil {
		return nil, err
	}
	s := &Server{
		tr:       tr,
		cfg:      cfg,
		log:      cfg.Logger,
		hub:      hub,
		store:    cfg.Store,
		throttle: newLoginThrottle(&cfg),
		csrf:     http.NewCrossOriginProtection(),
		pages:    make(map[string]*template.Template),
		mux:      http.NewServeMux(),

		signups:     budget.PerWindow(cfg.SignupLimit, cfg.SignupWindow, 0),
		signupSlots: newSignupSlots(),
		guestName:   guestName,
		apiBudget:   budget.New(cfg.APIRateLimit, cfg.APIRateBurst, 0),
	}
	s.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("web: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "peer", r.RemoteAddr)
		if apiJSONPath(r) {
			apiError(w, http.StatusForbidden, "cross_origin", "cross-site requests are refused; call the API from a server, not from another site's page")
			return
		}
		s.errorPage(w, r, http.StatusForbidden, msg("Cross-site request refused"),
			msg("This form was sent from another site, so it was refused (CSRF protection). Go back, reload the page and try again."))
	}))
	for _, page := range []string{"index.html", "room.html", "error.html", "login.html", "signup.html",
		"logout.html", "courses.html", "course.html", "users.html", "profile.html",
		"manage.html", "manage_courses.html", "manage_course.html", "manage_users.html", "manage_keys.html", "manage_secret.html"} {
		t, err := template.ParseFS(templateFS, "templates/base.html", "templates/"+page)
		if err != nil {
			return nil, err
		}
		s.pages[page] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.routes(http.FileServerFS(static))
	return s, nil
}

// ServeHTTP runs every request through the middleware and the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler().ServeHTTP(w, r)
}

func (s *Server) handler() http.Handler {
	return s.recoverPanics(s.logRequests(s.limitRequestTime(s.checkHost(s.securityHeaders(s.withLanguage(s.csrf.Handler(s.mux)))))))
}

// render writes a page with status. Every page gets the signed-in user (or
// nil) as .User for the navigation bar, a guest's own name as .Guest,
// whether sign-up is open, the request's Localizer as .L (templates write
// {{.L.T "English text"}}), the scripts' strings in its language as
// .I18N, and the language form's choices. A value of type text in data is
// translated.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	loc := s.localizer(r)
	for k, v := range data {
		if t, ok := v.(text); ok {
			data[k] = loc.Text(t)
		}
	}
	u := chat.UserFromContext(r.Context())
	data["User"] = u
	if _, ok := data["Guest"]; !ok && u == nil && guestToken(r) != nil {
		data["Guest"] = s.guest(r)
	}
	data["Signup"] = !s.cfg.DisableSignup
	data["L"] = loc
	data["I18N"] = loc.jsTranslations()
	data["Languages"] = Languages
	data["Here"] = herePath(r)
	data["UnreadPoll"] = s.cfg.UnreadPoll.Milliseconds()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept-Language, Cookie")
	w.WriteHeader(status)
	if err := s.pages[page].ExecuteTemplate(w, "base", data); err != nil {
		s.log.Error("web: render", "page", page, "err", err)
	}
}

// herePath is where the language form comes back to: this page's path,
// with its ?next= if that is a safe one (the login and sign-up pages), and
// no other query.
func herePath(r *http.Request) string {
	if next := safeNext(r.URL.Query().Get("next"), ""); next != "" {
		return r.URL.EscapedPath() + "?next=" + url.QueryEscape(next)
	}
	return r.URL.EscapedPath()
}

// pageAction is a link an error page offers besides "Back to the rooms".
type pageAction struct {
	Path  string
	Label string
}

// errorPage renders a friendly error page in the reader's language.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, detail text) {
	s.errorPageWith(w, r, status, title, detail, nil)
}

// errorPageWith is errorPage with a link to what the reader can do next.
func (s *Server) errorPageWith(w http.ResponseWriter, r *http.Request, status int, title, detail text, action *pageAction) {
	loc := s.localizer(r)
	data := map[string]any{"Title": loc.Text(title), "Detail": loc.Text(detail), "Status": status}
	if action != nil {
		data["Action"] = action
	}
	s.render(w, r, status, "error.html", data)
}
