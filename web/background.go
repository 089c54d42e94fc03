package web

import (
	"context"
	"time"
)

// Run does the server's background work until ctx is done: it deletes
// expired sessions every SweepInterval (and once at start), forgets expired
// login-throttle windows, and re-checks the access of signed-in users' open
// sockets every RecheckInterval. serve runs it beside the HTTP server.
func (s *Server) Run(ctx context.Context) {
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	var recheck <-chan time.Time
	if s.cfg.RecheckInterval > 0 {
		t := time.NewTicker(s.cfg.RecheckInterval)
		defer t.Stop()
		recheck = t.C
	}
	s.sweepSessions(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			s.sweepSessions(ctx)
			s.throttle.Sweep()
			s.signups.Sweep(s.cfg.Now())
		case <-recheck:
			if n := s.hub.Recheck(ctx); n > 0 {
				s.log.Info("web: closed sockets whose access ended", "count", n)
			}
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
