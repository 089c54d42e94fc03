package web

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Hosts is a parsed ALLOWED_HOSTS list. It decides which Host headers the
// server answers and which Origins may open a WebSocket, the way Django's
// ALLOWED_HOSTS and Channels' AllowedHostsOriginValidator do:
//
//   - "*" matches everything;
//   - ".example.com" matches example.com and every subdomain of it;
//   - "example.com" matches that host on any port; "example.com:8443" only
//     on that port;
//   - "https://example.com" (with a scheme) matches an Origin only with that
//     scheme and port (the scheme's default port when none is given).
type Hosts struct {
	patterns []hostPattern
}

type hostPattern struct {
	any    bool
	suffix bool   // leading dot: domain and subdomains
	host   string // lower case, without brackets
	port   string // "" = any port
	scheme string // "" = any scheme
}

// ParseHosts parses a comma-separated ALLOWED_HOSTS value.
func ParseHosts(list string) (*Hosts, error) {
	h := &Hosts{}
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		p, err := parsePattern(raw)
		if err != nil {
			return nil, err
		}
		h.patterns = append(h.patterns, p)
	}
	return h, nil
}

// DevelopmentHosts is what development allows when ALLOWED_HOSTS is empty.
func DevelopmentHosts() *Hosts {
	h, _ := ParseHosts("localhost,127.0.0.1,[::1]")
	return h
}

// Empty reports whether no pattern was given.
func (h *Hosts) Empty() bool { return len(h.patterns) == 0 }

// AllowsAny reports whether the list contains "*", which turns the Host and
// Origin checks off.
func (h *Hosts) AllowsAny() bool {
	for _, p := range h.patterns {
		if p.any {
			return true
		}
	}
	return false
}

func parsePattern(raw string) (hostPattern, error) {
	if raw == "*" {
		return hostPattern{any: true}, nil
	}
	var p hostPattern
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return p, fmt.Errorf("web: ALLOWED_HOSTS entry %q is not a scheme://host[:port] origin", raw)
		}
		p.scheme = strings.ToLower(u.Scheme)
		p.host = strings.ToLower(u.Hostname())
		p.port = u.Port()
		if p.port == "" {
			p.port = defaultPort(p.scheme)
		}
	} else {
		host, port := splitHostPort(raw)
		p.host, p.port = strings.ToLower(host), port
	}
	if strings.HasPrefix(p.host, ".") {
		p.suffix = true
		p.host = p.host[1:]
	}
	if p.host == "" || strings.ContainsAny(p.host, "/ *") {
		return p, fmt.Errorf("web: ALLOWED_HOSTS entry %q is not a host name", raw)
	}
	return p, nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.Trim(s, "[]"), ""
}

func (p hostPattern) matchHost(host, port string) bool {
	if p.any {
		return true
	}
	if p.port != "" && p.port != port {
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == p.host {
		return true
	}
	return p.suffix && strings.HasSuffix(host, "."+p.host)
}

// AllowsHost reports whether a request's Host header is allowed.
func (h *Hosts) AllowsHost(hostHeader string) bool {
	host, port := splitHostPort(hostHeader)
	if host == "" {
		return false
	}
	for _, p := range h.patterns {
		if p.matchHost(host, port) {
			return true
		}
	}
	return false
}

// AllowsOrigin reports whether a browser at origin may open a WebSocket. A
// missing Origin is allowed by the caller, not here: only browsers send one,
// and only browsers can be tricked into cross-site requests. "null" never
// matches anything but "*".
func (h *Hosts) AllowsOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" {
		for _, p := range h.patterns {
			if p.any {
				return true
			}
		}
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	for _, p := range h.patterns {
		if p.scheme != "" {
			effective := port
			if effective == "" {
				effective = defaultPort(scheme)
			}
			if p.scheme != scheme || !p.matchHost(u.Hostname(), effective) {
				continue
			}
			return true
		}
		if p.matchHost(u.Hostname(), port) {
			return true
		}
	}
	return false
}
