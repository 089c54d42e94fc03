package metrics

import (
	"net/http"
	"net/http/pprof"
)

// AdminHandler serves the admin listener: /metrics from m (404 when m is
// nil, metrics off) and the net/http/pprof profiles under /debug/pprof/.
// It must only be served on a listener of its own (ADMIN_ADDR), never on
// the public one: profiles reveal the program and cost CPU.
//
// net/http/pprof also registers itself on http.DefaultServeMux when
// imported; chatd never serves that mux, so the profiles exist only here.
func AdminHandler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if m != nil {
			_, _ = w.Write([]byte("chatd admin\n/metrics        Prometheus metrics\n/debug/pprof/   Go profiles\n"))
			return
		}
		_, _ = w.Write([]byte("chatd admin (METRICS=off)\n/debug/pprof/   Go profiles\n"))
	})
	return mux
}
