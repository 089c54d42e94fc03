package web

import (
	"context"
	"time"

	chat "github.com/chatd/chat"
)

// Run does the server's background work until ctx is done: it deletes
// expired sessions every SweepInterval (and once at start), forgets expired
// login-throttle windows, and applies the store's access revocations to
// open sockets, polling every RecheckInterval. serve runs it beside the
// HTTP server.
func (s *Server) Run(ctx context.Context) {
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	revoked := make(chan struct{})
	go func() {
		defer close(revoked)
		s.hub.Node().WatchRevocations(ctx, s.cfg.RecheckInterval, func(rv chat.Revocation) {
			if n := s.hub.Revoke(rv); n > 0 {
				s.log.Info("web: closed sockets whose access ended", "count", n, "reason", rv.Reason)
			}
		})
	}()
	defer func() { <-revoked }()
	extDone := make(chan struct{})
	go func() { defer close(extDone); s.runExternalRecheck(ctx) }()
	defer func() { <-extDone }()
	s.sweepSessions(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			s.sweepSessions(ctx)
			s.throttle.Sweep()
			s.signups.Sweep(s.cfg.Now())
			s.apiBudget.Sweep(s.cfg.Now())
		}
	}
}

func (s *Server) sweepSessions(ctx context.Context) {
	n, err := s.store.DeleteExpiredSessions(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("web: delete expired sessions", "err", err)
	case n > 0:
		s.log.Info("web: deleted expired sessions", "count", n)
	}
}
