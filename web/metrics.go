package web

import "sync/atomic"

// loginCounts count login attempts by outcome for /metrics.
type loginCounts struct {
	ok, failed, throttled atomic.Uint64
}

// LoginCounts are the login attempts a Server answered since it started:
// OK signed in; Failed had a wrong username or password; Throttled were
// refused (429) because of earlier failures, whatever their password.
// Forms without a username or password count as none of them.
type LoginCounts struct {
	OK, Failed, Throttled uint64
}

// LoginCounts returns the server's login counts.
func (s *Server) LoginCounts() LoginCounts {
	return LoginCounts{OK: s.logins.ok.Load(), Failed: s.logins.failed.Load(), Throttled: s.logins.throttled.Load()}
}
