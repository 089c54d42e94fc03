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
	// TrustProxy takes the client's IP, for the throttles and the
	// per-address connection and message limits, from the last
	// X-Forwarded-For entry (set by a reverse proxy such as Caddy) instead
	// of the connection's address (TRUST_PROXY).
	TrustProxy bool
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
	pages       map[string]*template.Template
	mux         *http.ServeMux
	logins      loginCounts // for /metrics (metrics.go)
}

// NewServer returns chatd's HTTP handler.
func NewServer(cfg Config, hub *ws.Hub) (*Server, error) {
	cfg.setDefaults()
	if cfg.Store == nil {
		return nil, errors.New("web: Config.Store is required")
	}
	s := &Server{
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
	}
	s.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("web: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "peer", r.RemoteAddr)
		s.errorPage(w, r, http.StatusForbidden, "Cross-site request refused",
			"This form was sent from another site, so it was refused (CSRF protection). Go back, reload the page and try again.")
	}))
	for _, page := range []string{"index.html", "room.html", "error.html", "login.html", "signup.html",
		"logout.html", "courses.html", "course.html", "users.html"} {
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
	return s.recoverPanics(s.logRequests(s.limitRequestTime(s.checkHost(s.securityHeaders(s.csrf.Handler(s.mux))))))
}

// render writes a page with status. Every page gets the signed-in user (or
// nil) as .User for the navigation bar, and whether sign-up is open.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["User"] = chat.UserFromContext(r.Context())
	data["Signup"] = !s.cfg.DisableSignup
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := s.pages[page].ExecuteTemplate(w, "base", data); err != nil {
		s.log.Error("web: render", "page", page, "err", err)
	}
}

// errorPage renders a friendly error page.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	s.render(w, r, status, "error.html", map[string]any{"Title": title, "Detail": detail, "Status": status})
}
