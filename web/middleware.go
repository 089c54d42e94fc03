package web

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// statusWriter records the status for the request log. It passes Hijack
// through, which the WebSocket upgrade needs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = http.StatusSwitchingProtocols
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs each HTTP request (not each WebSocket frame).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusSwitchingProtocols {
			return // the hub logs CONNECT and DISCONNECT
		}
		s.log.Log(r.Context(), accessLogLevel(r, sw.status), "HTTP", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"peer", r.RemoteAddr, "duration", time.Since(start).Round(time.Microsecond))
	})
}

// checkHost answers 400 to a Host header that ALLOWED_HOSTS does not list,
// as Django does, so the server cannot be used under a foreign name
// (DNS rebinding, poisoned absolute URLs). /healthz and /readyz answer any
// Host.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Health probes are exempt: orchestrators and proxies probe by
		// address, and the answers reveal nothing worth a rebinding attack.
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if !probe && !s.cfg.Hosts.AllowsHost(r.Host) {
			s.log.Warn("web: disallowed Host header", "host", r.Host, "peer", r.RemoteAddr)
			http.Error(w, "400 Bad Request: invalid Host header "+strconv.Quote(r.Host)+"; add it to ALLOWED_HOSTS", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets the Content-Security-Policy and its friends. Pages
// use only their own scripts and styles; chat text is inserted as text.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self' ws://"+r.Host+" wss://"+r.Host+"; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if s.cfg.Production {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a 500 and a log line.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("web: panic", "path", r.URL.Path, "panic", v)
				http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// cacheStatic lets browsers keep embedded static files for an hour.
func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

func pathEscape(s string) string { return url.PathEscape(s) }
