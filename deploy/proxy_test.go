// Package deploy holds the deployment files (compose.yaml, Caddyfile); its
// test runs the Caddyfile for real in front of two chatd processes.
package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// TestCaddyfileInFrontOfTwoReplicas runs deploy/Caddyfile with Caddy in
// front of two real chatd processes sharing the Redis layer, as compose.yaml
// does with containers: WebSockets are upgraded through the proxy, spread
// round robin over the replicas, and a message sent through one replica
// reaches clients on both. It needs the caddy binary and
// CHATD_TEST_REDIS_URL, and skips without them.
func TestCaddyfileInFrontOfTwoReplicas(t *testing.T) {
	redisURL := os.Getenv("CHATD_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("CHATD_TEST_REDIS_URL is unset; set it (e.g. redis://127.0.0.1:6379/0) to run the proxy test")
	}
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed (apt-get install caddy); skipping the Caddyfile test")
	}
	var replicas []*testserver.Server
	var upstreams []string
	data := t.TempDir() // the replicas share one database, as in compose (PostgreSQL there)
	for range 2 {
		s := testserver.Start(t, nil, "CHANNEL_LAYER=redis", "REDIS_URL="+redisURL, "ALLOWED_HOSTS=127.0.0.1", "DATA_DIR="+data)
		replicas = append(replicas, s)
		upstreams = append(upstreams, s.Addr)
	}

	// The site address 127.0.0.1:PORT keeps Caddy on loopback.
	proxy := "127.0.0.1:" + freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(caddy, "run", "--adapter", "caddyfile", "--config", "Caddyfile")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
		"PROXY_LISTEN=http://" + proxy, // the scheme: plain HTTP on a port other than 80
		"CHATD_UPSTREAMS=" + strings.Join(upstreams, " "),
		"CHATD_HOST=127.0.0.1",
	}
	logf, err := os.Create(dir + "/caddy.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(dir + "/caddy.log")
			t.Logf("caddy log:\n%s", b)
		}
	})

	deadline := time.Now().Add(20 * time.Second) // a failure bound
	var last string
	for {
		resp, err := http.Get("http://" + proxy + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"status":"ok"`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz through the proxy not 200 within 20s (last error %v, last answer %v)", err, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Caddy connects from loopback but adds X-Forwarded-For: what it passes
	// on is the status alone, not the counts or the layer's state.
	if strings.Contains(last, "connections") || strings.Contains(last, "layer") {
		t.Errorf("/readyz through the proxy shows details: %s", last)
	}

	// Four WebSockets through the proxy, one after another: round robin
	// gives each replica two.
	room := "proxy-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var clients []*wstest.Client
	for range 4 {
		c := wstest.Dial(t, "ws://"+proxy+"/ws/chat/"+room+"/", wstest.Options{
			Subprotocol: "chatd.v1",
			Origin:      "http://" + proxy, // what a browser on the proxied page sends
		})
		c.NextOfType(t, "hello")
		clients = append(clients, c)
	}
	for i, s := range replicas {
		if n := connections(t, s.URL); n != 2 {
			t.Errorf("replica %d holds %d WebSockets, want 2 (round robin over two replicas)", i, n)
		}
	}

	// Caddy's health checks (one at startup, then every 5 s) carry the Host
	// header from CHATD_HOST, which chatd accepts: it never had to refuse a
	// Host header.
	for i, s := range replicas {
		if strings.Contains(s.Stderr(), "disallowed Host header") {
			t.Errorf("replica %d refused a Host header:\n%s", i, s.Stderr())
		}
	}

	// A message from one client reaches all four, on both replicas.
	clients[0].Send(t, map[string]string{"message": "through the proxy"})
	for i, c := range clients {
		if got := c.NextOfType(t, "chat_message").Str("message"); got != "through the proxy" {
			t.Errorf("client %d received %q", i, got)
		}
	}
}

// connections returns the number of WebSockets a chatd process holds, from
// its /healthz.
func connections(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, rest, ok := strings.Cut(string(b), `"connections":`)
	if !ok {
		t.Fatalf("/healthz without connections: %s", b)
	}
	var n int
	if _, err := fmt.Sscanf(rest, "%d", &n); err != nil {
		t.Fatalf("/healthz: %s: %v", b, err)
	}
	return n
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string { return redistest.FreePort(t) }
