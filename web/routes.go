package web

import "net/http"

// routes registers every route chatd serves. Go 1.22 patterns: {$} anchors
// a trailing slash, so /chat/lobby/x is a 404, not the lobby.
func (s *Server) routes(static http.Handler) {
	s.mux.Handle("GET /{$}", http.RedirectHandler("/chat/", http.StatusFound))
	s.mux.HandleFunc("GET /chat/{$}", s.handleIndex)
	s.mux.HandleFunc("GET /chat/{room}/{$}", s.handleRoom)
	s.mux.HandleFunc("GET /ws/chat/{room}/{$}", s.handlePublicSocket)
	s.mux.Handle("GET /static/", cacheStatic(http.StripPrefix("/static/", static)))
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("/", s.handleNotFound)
}
