package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
)

// probe fetches path from s with Host host (empty: the server's address)
// and extra headers (name, value, ...), and returns the status and the
// decoded JSON body.
func probe(t *testing.T, s *server, path, host string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestHealthDetailsOnlyForOperators: /healthz and /readyz answer any Host
// with the same status codes as before, but the counts, the version and,
// during an outage, the Redis address only to a request from loopback that
// came through no proxy, or to everyone with HEALTH_DETAILS=true. A proxy
// on the same machine connects from loopback and adds X-Forwarded-For.
func TestHealthDetailsOnlyForOperators(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nothing listens here: Redis is "down"
	ln.Close()

	terse := func(t *testing.T, what string, body map[string]any) {
		t.Helper()
		if len(body) != 1 || body["status"] == nil {
			t.Errorf("%s: body %v, want only a status", what, body)
		}
	}
	detailed := func(t *testing.T, what string, body map[string]any) {
		t.Helper()
		for _, k := range []string{"status", "layer", "connections", "rooms", "version"} {
			if _, ok := body[k]; !ok {
				t.Errorf("%s: body %v lacks %q", what, body, k)
			}
		}
	}

	t.Run("default", func(t *testing.T) {
		s := start(t, nil, "CHANNEL_LAYER=redis", "REDIS_URL=redis://"+dead+"/0")
		for _, path := range []string{"/healthz", "/readyz"} {
			want := map[string]int{"/healthz": 200, "/readyz": 503}[path]
			code, body := probe(t, s, path, "")
			if code != want || body["status"] != "degraded" {
				t.Errorf("%s from loopback: %d %v, want %d degraded", path, code, body, want)
			}
			detailed(t, path+" from loopback", body)
			if layer, _ := body["layer"].(string); !strings.Contains(layer, dead) {
				t.Errorf("%s from loopback: layer %q does not name the Redis address", path, layer)
			}
			for _, hdr := range [][]string{
				{"X-Forwarded-For", "203.0.113.9"},
				{"Forwarded", "for=203.0.113.9"},
				{"X-Real-IP", "203.0.113.9"},
			} {
				code, body := probe(t, s, path, "evil.example", hdr...)
				if code != want || body["status"] != "degraded" {
					t.Errorf("%s through a proxy (%s), foreign Host: %d %v, want %d degraded", path, hdr[0], code, body, want)
				}
				terse(t, path+" through a proxy ("+hdr[0]+")", body)
			}
		}
	})
	t.Run("HEALTH_DETAILS=true", func(t *testing.T) {
		s := start(t, nil, "HEALTH_DETAILS=true")
		code, body := probe(t, s, "/healthz", "evil.example", "X-Forwarded-For", "203.0.113.9")
		if code != 200 || body["status"] != "ok" {
			t.Errorf("/healthz: %d %v", code, body)
		}
		detailed(t, "/healthz with HEALTH_DETAILS=true", body)
	})
}

// TestAllowAnyHostInProductionWarns: ALLOWED_HOSTS=* in production starts
// (it is a valid choice behind a proxy that checks hosts itself) but warns
// at start that the Host and Origin checks are off.
func TestAllowAnyHostInProductionWarns(t *testing.T) {
	const warning = "ALLOWED_HOSTS contains '*' in production: the Host and Origin checks are OFF"
	s := start(t, nil, "ENVIRONMENT=production", "ALLOWED_HOSTS=*")
	if logs := s.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, warning) {
		t.Errorf("no warning at start:\n%s", logs)
	}
	s = start(t, nil, "ENVIRONMENT=production", "ALLOWED_HOSTS=chat.example.com")
	if strings.Contains(s.logs.String(), warning) {
		t.Errorf("warned with a real host list")
	}
}
