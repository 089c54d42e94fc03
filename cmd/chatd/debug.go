package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/chatd/chat/core"
	"github.com/chatd/chat/ws"
)

// debugVars is what /debug/vars on DEBUG_ADDR shows: the store's calls by
// method (a benchmark's database queries), the message path's counters
// (stored/commits is the mean group-commit batch) and the hub's.
type debugVars struct {
	StoreCalls map[string]uint64 `json:"store_calls"`
	Messages   core.Stats        `json:"messages"`
	Hub        ws.Stats          `json:"hub"`
}

// checkDebugAddr refuses a DEBUG_ADDR that is not on a loopback address:
// profiles and counters are for the machine's own operators.
func checkDebugAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("DEBUG_ADDR %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("DEBUG_ADDR %q must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", addr)
}

// debugHandler serves /debug/vars (JSON, see debugVars) and the runtime
// profiles under /debug/pprof/.
func debugHandler(st *countingStore, node *core.Node, hub *ws.Hub) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(debugVars{StoreCalls: st.Calls(), Messages: node.Stats(), Hub: hub.Stats()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveDebug serves debugHandler on ln until ctx ends.
func serveDebug(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Warn("debug server ended", "err", err)
	}
}
