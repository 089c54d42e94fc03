package web

import (
	"net"
	"net/http"
)

// healthDetails reports whether a health check may show details: with
// Config.HealthDetails always; otherwise only to a request whose TCP peer is
// a loopback address and that carries no proxy header. /healthz and /readyz
// answer any Host (probes come by address), so without this a visitor, or
// any site through DNS rebinding, would read the connection counts and,
// during an outage, the Redis address. A reverse proxy on the same machine
// connects from loopback too, but adds X-Forwarded-For (Caddy, nginx with
// the usual configuration) or Forwarded, so what it passes on stays terse.
func (s *Server) healthDetails(r *http.Request) bool {
	if s.cfg.HealthDetails {
		return true
	}
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"} {
		if _, ok := r.Header[h]; ok {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
