package ws

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
)

// recordHandler is a slog.Handler that hands every record's message and
// attributes to a channel, so a test can wait for a log line.
type recordHandler struct{ ch chan map[string]string }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	select {
	case h.ch <- m:
	default: // never block the hub; the tests read what they wait for
	}
	return nil
}

// waitDisconnect returns the next "WebSocket DISCONNECT" record.
func waitDisconnect(t *testing.T, ch chan map[string]string) map[string]string {
	t.Helper()
	timeout := time.After(wstest.Timeout) // a failure bound, not a measurement
	for {
		select {
		case m := <-ch:
			if m["msg"] == "WebSocket DISCONNECT" {
				return m
			}
		case <-timeout:
			t.Fatal("no WebSocket DISCONNECT logged")
			return nil
		}
	}
}

// TestDisconnectLogWithoutCloseFrame: a client whose TCP connection just
// ends, without a close frame, is logged as code 1006 by the client (gws
// answers the EOF with a 1000 close frame of its own, which used to be
// logged as "code=1000 by=server"); a client that sends a close frame is
// logged with its code, and a close the server chose with the server's.
func TestDisconnectLogWithoutCloseFrame(t *testing.T) {
	logs := make(chan map[string]string, 1024)
	th := newTestHub(t, memory.NewBus(), Config{Echo: true, Logger: slog.New(recordHandler{logs})})

	t.Run("connection dropped", func(t *testing.T) {
		conn := rawUpgrade(t, th.srv.Listener.Addr().String(), "/?user=ann&room=drop")
		_ = conn.Close() // no close frame: the TCP connection just ends
		m := waitDisconnect(t, logs)
		if m["code"] != "1006" || m["by"] != "client" {
			t.Errorf("logged code=%s by=%s, want code=1006 by=client", m["code"], m["by"])
		}
	})
	t.Run("close frame from the client", func(t *testing.T) {
		c := th.dial(t, "user=bea&room=frame")
		c.NextOfType(t, "hello")
		c.Close() // a 1000 close frame, then the socket closes
		m := waitDisconnect(t, logs)
		if m["code"] != "1000" || m["by"] != "client" {
			t.Errorf("logged code=%s by=%s, want code=1000 by=client", m["code"], m["by"])
		}
	})
	t.Run("closed by the server", func(t *testing.T) {
		c := th.dial(t, "user=cat&room=server&session=s9")
		c.NextOfType(t, "hello")
		if err := th.hub.CloseWhere(context.Background(), Control{Session: "s9", Reason: "logged out"}); err != nil {
			t.Fatal(err)
		}
		c.WaitClose(t)
		m := waitDisconnect(t, logs)
		if m["code"] != "1008" || m["by"] != "server" {
			t.Errorf("logged code=%s by=%s, want code=1008 by=server", m["code"], m["by"])
		}
	})
}

// rawUpgrade performs a WebSocket handshake on a plain TCP connection and
// returns it once the 101 has been read, so the test controls exactly what
// (here: nothing) the client sends afterwards.
func rawUpgrade(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, base64.StdEncoding.EncodeToString(key))
	_ = conn.SetReadDeadline(time.Now().Add(wstest.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return conn
}
