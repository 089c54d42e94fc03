package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/budget"
	"github.com/chatd/chat/ws"
)

// Limits that keep one client from taking the server down, on the HTTP
// side (the hub has the WebSocket ones, ws/limits.go):
//
//   - limitRequestTime bounds the time to read a request's body and the
//     whole request, per request, so a trickled body cannot hold a
//     descriptor for ever. WebSocket upgrades are exempt: http.Server's
//     ReadTimeout would cut them, which is why it is not used.
//   - limitSockets refuses an upgrade when the process or the client's
//     address is at its connection cap, before the session is looked up.
//   - limitSignup throttles sign-ups per client address and lets them use
//     only part of the password-hashing capacity, so logins stay quick while
//     sign-ups are busy.
//   - loginThrottle counts failed logins per (address, username), per
//     username and per address, with a much higher threshold per address,
//     so one person's typos behind a shared NAT cost only that person.

// maxBodyBytes bounds any request body the middleware reads; the account
// forms have their own, smaller limit (maxFormBytes).
const maxBodyBytes = 64 << 10

// limitRequestTime gives every request that is not a WebSocket upgrade
// BodyTimeout to deliver its body (408 and the connection closed
// otherwise) and RequestTimeout in all: after it the request's context is
// done and writes fail. The body is read here, whole, before the handler
// runs, so a handler never waits on a slow client.
func (s *Server) limitRequestTime(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws.IsUpgrade(r) {
			// A WebSocket lives for hours; the hub bounds each write itself
			// and finds silent peers by ping. (net/http clears the deadlines
			// set here after each request, so a keep-alive connection's next
			// request, an upgrade too, starts without them.)
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		start := time.Now()
		end := start.Add(s.cfg.RequestTimeout)
		_ = rc.SetWriteDeadline(end)
		if r.Body != nil && r.Body != http.NoBody {
			bodyEnd := start.Add(s.cfg.BodyTimeout)
			if bodyEnd.After(end) {
				bodyEnd = end
			}
			_ = rc.SetReadDeadline(bodyEnd)
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
			if err != nil {
				s.bodyFailed(w, r, err, time.Since(start))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		// From here the connection's read deadline is the request's end: a
		// handler still running then sees its context cancelled.
		_ = rc.SetReadDeadline(end)
		ctx, cancel := context.WithDeadline(r.Context(), end)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bodyFailed answers a request whose body could not be read: 408 when it
// did not arrive in time, 413 when it is too large, 400 otherwise. The
// connection is closed after the answer.
func (s *Server) bodyFailed(w http.ResponseWriter, r *http.Request, err error, took time.Duration) {
	w.Header().Set("Connection", "close")
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig) && apiJSONPath(r):
		apiError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than "+strconv.Itoa(maxBodyBytes)+" bytes")
	case errors.As(err, &tooBig):
		s.errorPage(w, r, http.StatusRequestEntityTooLarge, msg("Request too large"), msg("The form sent is larger than this server accepts."))
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		s.log.Info("web: request body too slow; connection closed", "path", r.URL.Path, "peer", r.RemoteAddr,
			"after", took.Round(time.Millisecond))
		s.errorPage(w, r, http.StatusRequestTimeout, msg("Request timeout"),
			msg("The form took too long to arrive. Check your connection and send it again."))
	default:
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The request's body could not be read."))
	}
}

// limitSockets refuses a WebSocket upgrade with 503 or 429 when the
// process or the client's address is at its connection cap. It runs before
// withSession, so refusing costs no store lookup; the hub checks the caps
// (and the per-account one) again when it accepts.
func (s *Server) limitSockets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws.IsUpgrade(r) && s.hub.RefuseOverLimit(w, r, s.clientIP(r)) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// accessLogLevel is the level of the access log line of a request: a
// refused upgrade over a connection cap is Debug, because floods of them
// are what the caps are for and the hub logs each burst once.
func accessLogLevel(r *http.Request, status int) slog.Level {
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && ws.IsUpgrade(r) {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// newSignupSlots returns the semaphore of sign-ups in progress: half the
// password-hashing capacity (the password package runs GOMAXPROCS hashes at
// once), at least one. Logins never wait for a sign-up beyond the hashes
// already running.
func newSignupSlots() chan struct{} {
	return make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
}

// limitSignup throttles sign-up attempts per client address (SignupLimit
// per SignupWindow, valid or not; 429 over it) and runs at most
// cap(signupSlots) of them at once. A sign-up that cannot get a slot waits
// for one until its request ends (503).
func (s *Server) limitSignup(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.DisableSignup {
			next(w, r)
			return
		}
		addr, now := budget.AddrKey(s.clientIP(r)), s.cfg.Now()
		if !s.signups.Allow(addr, now) {
			wait := s.signups.Wait(addr, now)
			s.log.Debug("web: sign-up throttled", "addr", addr, "peer", r.RemoteAddr)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Round(time.Second).Seconds()))))
			reason := msg("Too many accounts were created from your network address. Wait %d seconds and try again.")
			if n, minutes := waitUnits(wait); minutes {
				reason = msg("Too many accounts were created from your network address. Wait %d minutes and try again.", n)
			} else {
				reason.args = []any{n}
			}
			s.render(w, r, http.StatusTooManyRequests, "signup.html", map[string]any{
				"Error": reason,
				"Next":  safeNext(r.URL.Query().Get("next"), ""),
			})
			return
		}
		select {
		case s.signupSlots <- struct{}{}:
			defer func() { <-s.signupSlots }()
		case <-r.Context().Done():
			w.Header().Set("Retry-After", "5")
			s.errorPage(w, r, http.StatusServiceUnavailable, msg("Busy"), msg("The server is busy creating other accounts. Try again in a moment."))
			return
		}
		next(w, r)
	}
}

// loginThrottle counts failed logins three ways, each in fixed windows of
// LoginWindow: per (address, username) with LoginFailures, the lowest
// threshold, so a person's own typos block only that person at that
// address; per username from any address with LoginUserFailures, against
// guessing one account from many addresses; and per address for any
// username with LoginIPFailures, a much higher threshold, against guessing
// many accounts from one address without locking out a school behind one
// NAT because of one student.
type loginThrottle struct {
	pair, user, addr *throttle
}

func newLoginThrottle(cfg *Config) *loginThrottle {
	mk := func(limit int) *throttle {
		t := newThrottle(limit, cfg.LoginWindow, maxThrottleKeys)
		t.now = cfg.Now
		return t
	}
	return &loginThrottle{pair: mk(cfg.LoginFailures), user: mk(cfg.LoginUserFailures), addr: mk(cfg.LoginIPFailures)}
}

// loginKeys returns the throttle keys of a login from ip for username.
func loginKeys(ip, username string) (pair, user, addr string) {
	addr, user = budget.AddrKey(ip), chat.UsernameKey(username)
	return addr + "|" + user, user, addr
}

// Blocked reports whether a login from ip for username is blocked, and for
// how long.
func (l *loginThrottle) Blocked(ip, username string) (time.Duration, bool) {
	pair, user, addr := loginKeys(ip, username)
	var wait time.Duration
	for _, c := range []struct {
		t   *throttle
		key string
	}{{l.pair, pair}, {l.user, user}, {l.addr, addr}} {
		if w, blocked := c.t.Blocked(c.key); blocked {
			wait = max(wait, w)
		}
	}
	return wait, wait > 0
}

// Fail records a failed login from ip for username.
func (l *loginThrottle) Fail(ip, username string) {
	pair, user, addr := loginKeys(ip, username)
	l.pair.Fail(pair)
	l.user.Fail(user)
	l.addr.Fail(addr)
}

// Succeeded forgets the username's failures after a successful login
// (the address's count stays: others share it).
func (l *loginThrottle) Succeeded(ip, username string) {
	pair, user, _ := loginKeys(ip, username)
	l.pair.Reset(pair)
	l.user.Reset(user)
}

// Sweep removes expired windows.
func (l *loginThrottle) Sweep() {
	l.pair.Sweep()
	l.user.Sweep()
	l.addr.Sweep()
}
