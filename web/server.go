// Package web is chatd's HTTP side: pages, static files, the WebSocket
// endpoint's checks (host, origin, room) before the hub takes over, health
// endpoints and middleware. Every route is in routes.go.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/chatd/chat/ws"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the web layer needs from the operator's configuration.
type Config struct {
	Production bool   // Secure cookies, stricter defaults
	Hosts      *Hosts // ALLOWED_HOSTS (already defaulted by the caller)
	Logger     *slog.Logger
	Version    string
}

// Server serves chatd's HTTP routes.
type Server struct {
	cfg   Config
	log   *slog.Logger
	hub   *ws.Hub
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// NewServer returns chatd's HTTP handler.
func NewServer(cfg Config, hub *ws.Hub) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hosts == nil {
		cfg.Hosts = DevelopmentHosts()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hub: hub, pages: make(map[string]*template.Template), mux: http.NewServeMux()}
	for _, page := range []string{"index.html", "room.html", "error.html"} {
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
	return s.recoverPanics(s.logRequests(s.checkHost(s.securityHeaders(s.mux))))
}

// render writes a page with status.
func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages[page].ExecuteTemplate(w, "base", data); err != nil {
		s.log.Error("web: render", "page", page, "err", err)
	}
}

// errorPage renders a friendly error page.
func (s *Server) errorPage(w http.ResponseWriter, status int, title, detail string) {
	s.render(w, status, "error.html", map[string]any{"Title": title, "Detail": detail, "Status": status})
}
