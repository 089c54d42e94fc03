package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chat/web"
)

// config is chatd's configuration: flags override environment variables,
// which override the defaults. It is passed down as values; no package
// keeps global configuration.
type config struct {
	Addr         string
	Environment  string // development | production
	AllowedHosts string
	Echo         bool
	ReadLimit    int
	SendQueue    int
	PingInterval time.Duration
	PongTimeout  time.Duration
	RateLimit    float64
	DrainTimeout time.Duration
	LogLevel     string
	LogFormat    string
	DataDir      string
	DatabaseURL  string
	ChannelLayer string
	RedisURL     string

	SessionTTL     time.Duration
	AllowSignup    bool
	AllowAnonymous bool
	AccessRecheck  time.Duration
	LoginFailures  int
	LoginWindow    time.Duration
	TrustProxy     bool

	History           string // on | off
	HistoryOnJoin     int
	HistoryMaxAge     time.Duration
	HistoryMaxPerRoom int
	HistoryPrune      time.Duration

	DebugAddr string // loopback address for /debug/vars and /debug/pprof/; empty: none

	hosts *web.Hosts // parsed AllowedHosts, defaulted for development
}

func (c *config) production() bool { return c.Environment == "production" }

// envFlags binds flags whose defaults come from environment variables, and
// remembers every bad environment value to report them all at once.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []string
}

func (e *envFlags) env(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

func (e *envFlags) String(p *string, flagName, envName, def, usage string) {
	e.fs.StringVar(p, flagName, e.env(envName, def), usage+" ("+envName+")")
}

func (e *envFlags) Int(p *int, flagName, envName string, def int, usage string) {
	v, err := strconv.Atoi(e.env(envName, strconv.Itoa(def)))
	if err != nil {
		e.errs = append(e.errs, envName+" must be an integer")
	}
	e.fs.IntVar(p, flagName, v, usage+" ("+envName+")")
}

func (e *envFlags) Float(p *float64, flagName, envName string, def float64, usage string) {
	v, err := strconv.ParseFloat(e.env(envName, strconv.FormatFloat(def, 'g', -1, 64)), 64)
	if err != nil {
		e.errs = append(e.errs, envName+" must be a number")
	}
	e.fs.Float64Var(p, flagName, v, usage+" ("+envName+")")
}

func (e *envFlags) Bool(p *bool, flagName, envName string, def bool, usage string) {
	v, err := strconv.ParseBool(e.env(envName, strconv.FormatBool(def)))
	if err != nil {
		e.errs = append(e.errs, envName+" must be true or false")
	}
	e.fs.BoolVar(p, flagName, v, usage+" ("+envName+")")
}

func (e *envFlags) Duration(p *time.Duration, flagName, envName string, def time.Duration, usage string) {
	v, err := time.ParseDuration(e.env(envName, def.String()))
	if err != nil {
		e.errs = append(e.errs, envName+" must be a duration such as 10s")
	}
	e.fs.DurationVar(p, flagName, v, usage+" ("+envName+")")
}

// parseConfig reads the serve command's flags and environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &envFlags{fs: fs, getenv: getenv}

	e.String(&c.Environment, "environment", "ENVIRONMENT", "development", "development or production; production requires ALLOWED_HOSTS, binds all interfaces for PORT and sets Secure cookies")
	env := e.env("ENVIRONMENT", "development")
	defAddr := "127.0.0.1:8000"
	if port := e.env("PORT", ""); port != "" {
		host := "127.0.0.1"
		if env == "production" {
			host = "0.0.0.0"
		}
		defAddr = host + ":" + port
	}
	e.String(&c.Addr, "addr", "ADDR", defAddr, "address to listen on; PORT alone means 127.0.0.1:PORT in development and 0.0.0.0:PORT in production")
	e.String(&c.AllowedHosts, "allowed-hosts", "ALLOWED_HOSTS", "", "comma-separated hosts and origins allowed, as in Django: '*', 'example.com', '.example.com', 'https://example.com'; empty in development means localhost only")
	e.Bool(&c.Echo, "echo", "ECHO", true, "send each message back to its sender too (a connection may override with ?echo=0)")
	e.Int(&c.ReadLimit, "read-limit", "READ_LIMIT", 64<<10, "largest WebSocket frame a client may send, in bytes (close 1009 above it)")
	e.Int(&c.SendQueue, "send-queue", "SEND_QUEUE_BYTES", 1<<20, "bytes queued for one slow client before it is disconnected (close 1008)")
	e.Duration(&c.PingInterval, "ping-interval", "PING_INTERVAL", 25*time.Second, "how often the server pings each client")
	e.Duration(&c.PongTimeout, "pong-timeout", "PONG_TIMEOUT", 20*time.Second, "a client silent this long after a ping is disconnected")
	e.Float(&c.RateLimit, "rate-limit", "RATE_LIMIT", 50, "messages per second one connection may send (bursts of twice that); 0 disables the limit")
	e.Duration(&c.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 10*time.Second, "on SIGTERM, how long to wait for connections to close before cutting them")
	e.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	e.String(&c.LogFormat, "log-format", "LOG_FORMAT", "text", "text or json")
	e.String(&c.DataDir, "data-dir", "DATA_DIR", "data", "directory of the SQLite database (when DATABASE_URL is empty)")
	e.String(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "postgres://... to use PostgreSQL instead of SQLite")
	e.String(&c.DebugAddr, "debug-addr", "DEBUG_ADDR", "", "loopback address (e.g. 127.0.0.1:6060) serving /debug/vars (store calls by method, message and hub counters) and /debug/pprof/ for benchmarks and profiles; empty: off")
	e.Duration(&c.SessionTTL, "session-ttl", "SESSION_TTL", 14*24*time.Hour, "how long a login lasts before the user must sign in again")
	e.Bool(&c.AllowSignup, "allow-signup", "ALLOW_SIGNUP", true, "let visitors create accounts at /accounts/signup/")
	e.Bool(&c.AllowAnonymous, "allow-anonymous", "ALLOW_ANONYMOUS", true, "let visitors who are not signed in chat in public rooms as guests")
	e.Duration(&c.AccessRecheck, "access-recheck", "ACCESS_RECHECK_INTERVAL", time.Second, "how often every process polls the store for access taken away (logout, unenroll, deleted course or account, from any process or admin command) and closes those sockets")
	e.String(&c.History, "history", "HISTORY", "on", "on: store every message (seq, acks, history, resume); off: keep nothing, as the Channels tutorials do")
	e.Int(&c.HistoryOnJoin, "history-on-join", "HISTORY_ON_JOIN", 50, "how many of a room's latest messages a new connection gets first; 0 sends none")
	e.Duration(&c.HistoryMaxAge, "history-max-age", "HISTORY_MAX_AGE", 0, "delete stored messages older than this (for example 720h); 0 keeps them")
	e.Int(&c.HistoryMaxPerRoom, "history-max-per-room", "HISTORY_MAX_PER_ROOM", 0, "keep at most this many messages per room; 0 keeps all")
	e.Duration(&c.HistoryPrune, "history-prune-interval", "HISTORY_PRUNE_INTERVAL", time.Minute, "how often HISTORY_MAX_AGE and HISTORY_MAX_PER_ROOM are enforced")
	e.Int(&c.LoginFailures, "login-failures", "LOGIN_FAILURE_LIMIT", 5, "failed logins per client IP, or per username, after which login answers 429 until LOGIN_FAILURE_WINDOW has passed")
	e.Duration(&c.LoginWindow, "login-window", "LOGIN_FAILURE_WINDOW", 5*time.Minute, "how long failed logins count, from the first one")
	e.Bool(&c.TrustProxy, "trust-proxy", "TRUST_PROXY", false, "take the client IP from the last X-Forwarded-For entry (set it behind a reverse proxy such as Caddy)")
	kind, redisURL, layerErr := layerConfigFromEnv(getenv)
	if layerErr != nil {
		e.errs = append(e.errs, layerErr.Error())
	}
	fs.StringVar(&c.ChannelLayer, "channel-layer", kind, "memory (one process) or redis (many processes) (CHANNEL_LAYER)")
	fs.StringVar(&c.RedisURL, "redis-url", redisURL, "Redis address for the redis layer, redis://host:port/db (REDIS_URL, or IP_REDIS and PORT_REDIS)")
	fs.Usage = func() { usage(fs, stderr) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see chatd -h)", fs.Arg(0))
	}
	if len(e.errs) > 0 {
		return nil, fmt.Errorf("bad environment: %s", strings.Join(e.errs, "; "))
	}
	return c, c.validate()
}

// validate checks values and fills derived fields.
func (c *config) validate() error {
	switch c.Environment {
	case "development", "production":
	default:
		return fmt.Errorf("ENVIRONMENT must be development or production, not %q", c.Environment)
	}
	hosts, err := web.ParseHosts(c.AllowedHosts)
	if err != nil {
		return err
	}
	if hosts.Empty() {
		if c.production() {
			return fmt.Errorf("ALLOWED_HOSTS must be set in production (for example ALLOWED_HOSTS=chat.example.com)")
		}
		hosts = web.DevelopmentHosts()
	}
	c.hosts = hosts
	switch {
	case c.ReadLimit < 256:
		return fmt.Errorf("read limit must be at least 256 bytes")
	case c.SendQueue < 4096:
		return fmt.Errorf("send queue must be at least 4096 bytes")
	case c.PingInterval < 100*time.Millisecond || c.PongTimeout < 100*time.Millisecond:
		return fmt.Errorf("ping interval and pong timeout must be at least 100ms")
	case c.RateLimit < 0:
		return fmt.Errorf("rate limit must not be negative")
	case c.DrainTimeout < 0:
		return fmt.Errorf("drain timeout must not be negative")
	case c.SessionTTL < time.Second:
		return fmt.Errorf("SESSION_TTL must be at least 1s")
	case c.AccessRecheck < 10*time.Millisecond:
		return fmt.Errorf("ACCESS_RECHECK_INTERVAL must be at least 10ms")
	case c.History != "on" && c.History != "off":
		return fmt.Errorf("HISTORY must be on or off, not %q", c.History)
	case c.HistoryOnJoin < 0 || c.HistoryOnJoin > 1000:
		return fmt.Errorf("HISTORY_ON_JOIN must be from 0 to 1000")
	case c.HistoryMaxAge < 0:
		return fmt.Errorf("HISTORY_MAX_AGE must not be negative")
	case c.HistoryMaxPerRoom < 0:
		return fmt.Errorf("HISTORY_MAX_PER_ROOM must not be negative")
	case c.HistoryPrune < 10*time.Millisecond:
		return fmt.Errorf("HISTORY_PRUNE_INTERVAL must be at least 10ms")
	case c.LoginFailures < 1:
		return fmt.Errorf("LOGIN_FAILURE_LIMIT must be at least 1")
	case c.LoginWindow < time.Second:
		return fmt.Errorf("LOGIN_FAILURE_WINDOW must be at least 1s")
	}
	switch c.ChannelLayer {
	case layerMemory:
	case layerRedis:
		if c.RedisURL == "" {
			return fmt.Errorf("the redis channel layer needs REDIS_URL (or IP_REDIS and PORT_REDIS, or -redis-url)")
		}
		if err := checkRedisURL(c.RedisURL); err != nil {
			return fmt.Errorf("redis URL: %w", err)
		}
	default:
		return fmt.Errorf("CHANNEL_LAYER must be memory or redis, not %q", c.ChannelLayer)
	}
	if c.DebugAddr != "" {
		if err := checkDebugAddr(c.DebugAddr); err != nil {
			return err
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	return nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lv}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `chatd: a real-time chat server (the Django Channels chat tutorials, in Go)

Usage:
  chatd [serve] [flags]        run the server (the default)
  chatd layer check            send a message through the channel layer and back
  chatd migrate                create or upgrade the database schema
  chatd createuser|setpassword|createcourse|enroll|unenroll|listusers|listcourses|members ...
                               manage accounts and courses (each takes -h); they use
                               DATABASE_URL or DATA_DIR from the environment
  chatd version                print the version

Every flag can also be set by the environment variable named in brackets;
a flag given on the command line wins.

Flags:
`)
	fs.PrintDefaults()
}
