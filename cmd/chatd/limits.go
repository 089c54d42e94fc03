package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"syscall"
	"time"
)

// limitsConfig is the part of chatd's configuration that keeps one client
// from taking the server down (README, "Limits and abuse").
type limitsConfig struct {
	MaxConns        autoInt // auto: the open-file limit minus FDReserve
	FDReserve       int
	MaxConnsPerIP   int
	MaxConnsPerUser int
	UserRateLimit   autoFloat // auto: RATE_LIMIT
	IPRateLimit     autoFloat // auto: 2 x RATE_LIMIT
	RoomRateLimit   autoFloat // auto: 4 x RATE_LIMIT
	InvalidFrames   int
	BodyTimeout     time.Duration
	RequestTimeout  time.Duration
	SignupLimit     int
	SignupWindow    time.Duration

	LoginUserFailures int
	LoginIPFailures   int
}

// bindLimits registers the limits' flags.
func (e *envFlags) bindLimits(c *limitsConfig) {
	e.AutoInt(&c.MaxConns, "max-conns", "MAX_CONNS", "WebSocket connections this process accepts, a `number` or auto, then 503; auto is the open-file limit minus FD_RESERVE; 0 means no limit")
	e.Int(&c.FDReserve, "fd-reserve", "FD_RESERVE", 1024, "file descriptors MAX_CONNS=auto keeps free for HTTP pages, health probes, the store and the channel layer (at most a quarter of the open-file limit)")
	e.Int(&c.MaxConnsPerIP, "max-conns-per-ip", "MAX_CONNS_PER_IP", 200, "WebSocket connections from one client address (IPv6: one /64), then 429; 0 means no limit")
	e.Int(&c.MaxConnsPerUser, "max-conns-per-user", "MAX_CONNS_PER_USER", 20, "WebSocket connections of one signed-in account, then 429 (guests count per address); 0 means no limit")
	e.AutoFloat(&c.UserRateLimit, "user-rate-limit", "USER_RATE_LIMIT", "messages per second one signed-in account may send across all its connections, a `number` or auto (bursts of twice that); auto is RATE_LIMIT; 0 means no limit")
	e.AutoFloat(&c.IPRateLimit, "ip-rate-limit", "IP_RATE_LIMIT", "messages per second from one client address across all its connections, a `number` or auto (bursts of twice that); auto is 2 x RATE_LIMIT; 0 means no limit")
	e.AutoFloat(&c.RoomRateLimit, "room-rate-limit", "ROOM_RATE_LIMIT", "messages per second one room accepts from this process's connections, a `number` or auto, a flood guard (bursts of twice that); auto is 4 x RATE_LIMIT; 0 means no limit")
	e.Int(&c.InvalidFrames, "invalid-frames", "INVALID_FRAME_LIMIT", 20, "invalid or rate-limited frames a connection may send in quick succession (forgiven at that many a minute) before it is closed with 1008; 0 never closes")
	e.Duration(&c.BodyTimeout, "body-timeout", "REQUEST_BODY_TIMEOUT", 10*time.Second, "time a client has to send a request's body (408 and the connection closed after it); WebSockets are not affected")
	e.Duration(&c.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", 30*time.Second, "time one HTTP request may take in all; WebSockets are not affected")
	e.Int(&c.SignupLimit, "signup-limit", "SIGNUP_LIMIT", 20, "sign-up attempts per client address per SIGNUP_WINDOW, then 429; 0 means no limit")
	e.Duration(&c.SignupWindow, "signup-window", "SIGNUP_WINDOW", time.Hour, "the period of SIGNUP_LIMIT (the allowance refills steadily over it)")
	e.Int(&c.LoginUserFailures, "login-user-failures", "LOGIN_USER_FAILURE_LIMIT", 20, "failed logins for one username from any addresses, after which its logins answer 429 until LOGIN_FAILURE_WINDOW has passed")
	e.Int(&c.LoginIPFailures, "login-ip-failures", "LOGIN_IP_FAILURE_LIMIT", 100, "failed logins from one client address for any usernames, after which its logins answer 429 until LOGIN_FAILURE_WINDOW has passed")
}

// validate checks the limits.
func (c *limitsConfig) validate() error {
	switch {
	case c.FDReserve < 0:
		return errors.New("FD_RESERVE must not be negative")
	case c.MaxConnsPerIP < 0:
		return errors.New("MAX_CONNS_PER_IP must not be negative")
	case c.MaxConnsPerUser < 0:
		return errors.New("MAX_CONNS_PER_USER must not be negative")
	case c.InvalidFrames < 0:
		return errors.New("INVALID_FRAME_LIMIT must not be negative")
	case c.BodyTimeout < 10*time.Millisecond:
		return errors.New("REQUEST_BODY_TIMEOUT must be at least 10ms")
	case c.RequestTimeout < 10*time.Millisecond:
		return errors.New("REQUEST_TIMEOUT must be at least 10ms")
	case c.SignupLimit < 0:
		return errors.New("SIGNUP_LIMIT must not be negative")
	case c.SignupWindow < time.Second:
		return errors.New("SIGNUP_WINDOW must be at least 1s")
	case c.LoginUserFailures < 1:
		return errors.New("LOGIN_USER_FAILURE_LIMIT must be at least 1")
	case c.LoginIPFailures < 1:
		return errors.New("LOGIN_IP_FAILURE_LIMIT must be at least 1")
	}
	return nil
}

// maxConns returns the global connection cap: MAX_CONNS, or for auto the
// open-file limit minus the reserve. It logs what it chose.
func (c *limitsConfig) maxConns(log *slog.Logger) int {
	if c.MaxConns >= 0 {
		return int(c.MaxConns)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit; MAX_CONNS=auto means no connection limit", "err", err)
		return 0
	}
	n := autoMaxConns(lim.Cur, c.FDReserve)
	log.Info("connection limit", "max_conns", n, "open_file_limit", lim.Cur, "per_ip", c.MaxConnsPerIP, "per_user", c.MaxConnsPerUser)
	return n
}

// autoMaxConns returns the connection cap for an open-file limit of nofile:
// nofile minus reserve, where the reserve is at most a quarter of nofile,
// so that HTTP requests, health probes, the store and the channel layer
// always have descriptors left. A limit too large to matter gives 0 (no cap).
func autoMaxConns(nofile uint64, reserve int) int {
	if nofile > 1<<30 { // RLIM_INFINITY, or as good as
		return 0
	}
	n := int(nofile)
	return max(1, n-min(reserve, n/4))
}

// signupLimit is SIGNUP_LIMIT for web.Config, where negative means off.
func (c *limitsConfig) signupLimit() int {
	if c.SignupLimit == 0 {
		return -1
	}
	return c.SignupLimit
}

// autoInt is a flag that takes a whole number or "auto" (held as -1).
type autoInt int

func (v *autoInt) String() string {
	if *v < 0 {
		return "auto"
	}
	return strconv.Itoa(int(*v))
}

func (v *autoInt) Set(s string) error {
	if s == "auto" {
		*v = -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("must be auto or a whole number, 0 or more")
	}
	*v = autoInt(n)
	return nil
}

// autoFloat is a flag that takes a number or "auto" (held as -1).
type autoFloat float64

func (v *autoFloat) String() string {
	if *v < 0 {
		return "auto"
	}
	return strconv.FormatFloat(float64(*v), 'g', -1, 64)
}

func (v *autoFloat) Set(s string) error {
	if s == "auto" {
		*v = -1
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return errors.New("must be auto or a number, 0 or more")
	}
	*v = autoFloat(f)
	return nil
}

// or returns v, or def when v is auto.
func (v autoFloat) or(def float64) float64 {
	if v < 0 {
		return def
	}
	return float64(v)
}

// AutoInt binds an autoInt flag, "auto" unless the environment says otherwise.
func (e *envFlags) AutoInt(p *autoInt, flagName, envName, usage string) {
	*p = -1
	if err := p.Set(e.env(envName, "auto")); err != nil {
		e.errs = append(e.errs, fmt.Sprintf("%s %v", envName, err))
	}
	e.fs.Var(p, flagName, usage+" ("+envName+")")
}

// AutoFloat binds an autoFloat flag, "auto" unless the environment says
// otherwise.
func (e *envFlags) AutoFloat(p *autoFloat, flagName, envName, usage string) {
	*p = -1
	if err := p.Set(e.env(envName, "auto")); err != nil {
		e.errs = append(e.errs, fmt.Sprintf("%s %v", envName, err))
	}
	e.fs.Var(p, flagName, usage+" ("+envName+")")
}

// clockKey is the context key of the limits' clock.
type clockKey struct{}

// withClock returns ctx carrying now as the clock of the rate limits and
// throttles of a server that run starts with ctx. Tests use it to advance
// time explicitly instead of sleeping through real windows; chatd itself
// never sets it.
func withClock(ctx context.Context, now func() time.Time) context.Context {
	return context.WithValue(ctx, clockKey{}, now)
}

// clockFrom returns the clock withClock put in ctx, or time.Now.
func clockFrom(ctx context.Context) func() time.Time {
	if now, ok := ctx.Value(clockKey{}).(func() time.Time); ok {
		return now
	}
	return time.Now
}
