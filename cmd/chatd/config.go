package main

import (
	"errors"
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
	Layer        layerSettings

	HealthDetails bool

	Language        string // en | es | pt, after parsing
	languageWarning string // why LANGUAGE from the environment was not used, logged at start
	languageFromEnv bool   // LANGUAGE came from the environment, not -language
	UnreadPoll      time.Duration

	SessionTTL     time.Duration
	AllowSignup    bool
	AllowAnonymous bool
	AccessRecheck  time.Duration
	LoginFailures  int
	LoginWindow    time.Duration
	TrustProxy     bool
	APIRateLimit   float64 // messages a second per API key; 0: no limit
	APIRateBurst   int

	History           string // on | off
	HistoryOnJoin     int
	HistoryMaxAge     time.Duration
	HistoryMaxPerRoom int
	HistoryPrune      time.Duration

	Presence         string // on | off
	PresenceMaxList  int
	PresenceBatch    time.Duration
	PresenceInterval time.Duration
	PresenceTTL      time.Duration
	PresenceGrace    time.Duration
	TypingTimeout    time.Duration

	limitsConfig                     // connection caps, budgets, timeouts, throttles (limits.go)
	djangoConfig                     // beside a Django site: its channel layer (django.go)
	django       djangoSessionConfig // beside a Django site: its logins (django.go)
	adminConfig                      // ADMIN_ADDR, METRICS (metrics.go)
	DebugAddr    string              // loopback address for /debug/vars and /debug/pprof/; empty: none

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
	e.String(&c.AllowedHosts, "allowed-hosts", "ALLOWED_HOSTS", "", "comma-separated hosts and origins allowed, as in Django: '*', 'example.com', '.example.com', 'https://example.com'; empty in development means localhost only; '*' turns the Host and Origin checks off (a warning at start in production)")
	e.Bool(&c.Echo, "echo", "ECHO", true, "send each message back to its sender too (a connection may override with ?echo=0)")
	e.Int(&c.ReadLimit, "read-limit", "READ_LIMIT", 64<<10, "largest WebSocket frame a client may send, in bytes (close 1009 above it)")
	e.Int(&c.SendQueue, "send-queue", "SEND_QUEUE_BYTES", 1<<20, "bytes queued for one slow client before it is disconnected (close 1008)")
	e.Duration(&c.PingInterval, "ping-interval", "PING_INTERVAL", 25*time.Second, "how often the server pings each client")
	e.Duration(&c.PongTimeout, "pong-timeout", "PONG_TIMEOUT", 20*time.Second, "a client silent this long after a ping is disconnected")
	e.Float(&c.RateLimit, "rate-limit", "RATE_LIMIT", 50, "messages per second one connection may send (bursts of twice that); 0 disables the limit, and the account, address and room budgets left at auto")
	e.Duration(&c.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 10*time.Second, "on SIGTERM, how long to wait for connections to close before cutting them")
	e.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	e.String(&c.LogFormat, "log-format", "LOG_FORMAT", "text", "text or json")
	e.storeFlags(&c.DatabaseURL, &c.DataDir)
	e.String(&c.DebugAddr, "debug-addr", "DEBUG_ADDR", "", "loopback address (e.g. 127.0.0.1:6060) serving /debug/vars (store calls by method, message and hub counters) and /debug/pprof/ for benchmarks and profiles; empty: off")
	e.Duration(&c.SessionTTL, "session-ttl", "SESSION_TTL", 14*24*time.Hour, "how long a login lasts before the user must sign in again")
	e.Bool(&c.AllowSignup, "allow-signup", "ALLOW_SIGNUP", e.env("DJANGO_SECRET_KEY", "") == "", "let visitors create accounts at /accounts/signup/ (default false when DJANGO_SECRET_KEY is set: the Django site owns the accounts)")
	e.Bool(&c.AllowAnonymous, "allow-anonymous", "ALLOW_ANONYMOUS", true, "let visitors who are not signed in chat in public rooms as guests")
	e.Duration(&c.AccessRecheck, "access-recheck", "ACCESS_RECHECK_INTERVAL", time.Second, "how often every process polls the store for access taken away (logout, unenroll, deactivated or deleted account, deleted course, from any process or admin command) and closes those sockets")
	e.String(&c.History, "history", "HISTORY", "on", "on: store every message (seq, acks, history, resume); off: keep nothing, as the Channels tutorials do")
	e.Int(&c.HistoryOnJoin, "history-on-join", "HISTORY_ON_JOIN", 50, "how many of a room's latest messages a new connection gets first; 0 sends none")
	e.Duration(&c.HistoryMaxAge, "history-max-age", "HISTORY_MAX_AGE", 0, "delete stored messages older than this (for example 720h); 0 keeps them")
	e.Int(&c.HistoryMaxPerRoom, "history-max-per-room", "HISTORY_MAX_PER_ROOM", 0, "keep at most this many messages per room; 0 keeps all")
	e.Duration(&c.HistoryPrune, "history-prune-interval", "HISTORY_PRUNE_INTERVAL", time.Minute, "how often HISTORY_MAX_AGE and HISTORY_MAX_PER_ROOM are enforced")
	e.String(&c.Presence, "presence", "PRESENCE", "on", "on: chatd.v1 clients get the room's presence list, join and leave, and typing; /users/ shows who is online; off: none of it")
	e.Int(&c.PresenceMaxList, "presence-max-list", "PRESENCE_MAX_LIST", 100, "largest room whose joins and leaves are sent one by one and whose presence list is sent whole; above it clients get presence_count frames")
	e.Duration(&c.PresenceBatch, "presence-batch", "PRESENCE_BATCH", 250*time.Millisecond, "presence changes are coalesced and published this often")
	e.Duration(&c.PresenceInterval, "presence-interval", "PRESENCE_INTERVAL", 5*time.Second, "a process with nothing else to publish sends a presence heartbeat this often")
	e.Duration(&c.PresenceTTL, "presence-ttl", "PRESENCE_TTL", 15*time.Second, "a process not heard from this long (killed, or cut off from Redis) has its users leave the other processes' presence")
	e.Duration(&c.PresenceGrace, "presence-leave-grace", "PRESENCE_LEAVE_GRACE", time.Second, "a user gone for less than this is not announced as leaving (a page reload, a tab moving between processes); 0 announces at once")
	e.Duration(&c.TypingTimeout, "typing-timeout", "TYPING_TIMEOUT", 6*time.Second, "a typing indicator ends this long after the last typing frame unless renewed")
	e.Int(&c.LoginFailures, "login-failures", "LOGIN_FAILURE_LIMIT", 5, "failed logins for one username from one client address, after which those logins answer 429 until LOGIN_FAILURE_WINDOW has passed")
	e.Duration(&c.LoginWindow, "login-window", "LOGIN_FAILURE_WINDOW", 5*time.Minute, "how long failed logins count, from the first one")
	e.Bool(&c.TrustProxy, "trust-proxy", "TRUST_PROXY", false, "take the client IP from the last X-Forwarded-For entry (set it behind a reverse proxy such as Caddy)")
	e.Float(&c.APIRateLimit, "api-rate-limit", "API_RATE_LIMIT", 10, "messages per second one API key may post through the publish API (a batch counts one per room); 0 means no limit")
	e.Int(&c.APIRateBurst, "api-rate-burst", "API_RATE_BURST", 100, "messages one API key may post at once before API_RATE_LIMIT applies; also the most rooms one batch may name (at most 100)")
	e.bindLimits(&c.limitsConfig)
	e.String(&c.Language, "language", "LANGUAGE", "en", "language of pages for visitors who chose none and whose browser (Accept-Language) asks for none chatd speaks: en, es or pt; a gettext list such as pt_BR:pt:en takes its first supported language")
	e.Duration(&c.UnreadPoll, "unread-poll-interval", "UNREAD_POLL_INTERVAL", 20*time.Second, "how often a signed-in visitor's open pages ask for their unread counts (the badge in the header, the counts on /chat/)")
	e.Bool(&c.HealthDetails, "health-details", "HEALTH_DETAILS", false, "show connection counts, version and the channel layer's error on /healthz and /readyz to every client; otherwise only to requests from the loopback interface that carry no proxy header (status codes are the same either way)")
	e.bindDjango(&c.djangoConfig)
	e.bindDjangoSessions(&c.django)
	e.layerFlags(&c.Layer, prefixFromDatabase)
	e.bindAdmin(&c.adminConfig)
	fs.Usage = func() { usage(fs, stderr) }
	if err := e.parse(args, 0); err != nil {
		return nil, err
	}
	if err := c.Layer.validate(fs); err != nil {
		return nil, err
	}
	c.languageFromEnv = !flagGiven(fs, "language")
	return c, c.validate()
}

// usageError is a command line that does not parse: an unknown flag, a
// missing or extra argument. The command has already printed the problem
// and its usage to stderr; main exits with status 2, as the flag package
// does.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parse parses args, which must leave exactly nargs positional arguments,
// and then reports bad environment values (all at once). A bad command line
// is a *usageError after the usage has been printed; -h returns
// flag.ErrHelp after printing it.
func (e *envFlags) parse(args []string, nargs int) error {
	if err := e.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err} // the flag set printed it with the usage
	}
	if e.fs.NArg() != nargs {
		var err error
		if e.fs.NArg() > nargs {
			err = fmt.Errorf("unexpected argument %q (see chatd %s -h)", e.fs.Arg(nargs), e.fs.Name())
		} else {
			err = fmt.Errorf("missing arguments (see chatd %s -h)", e.fs.Name())
		}
		fmt.Fprintln(e.fs.Output(), err)
		e.fs.Usage()
		return &usageError{err}
	}
	if len(e.errs) > 0 {
		return fmt.Errorf("bad environment: %s", strings.Join(e.errs, "; "))
	}
	return nil
}

// storeFlags binds the settings that select the store: -database-url
// (DATABASE_URL) and -data-dir (DATA_DIR).
func (e *envFlags) storeFlags(databaseURL, dataDir *string) {
	e.String(dataDir, "data-dir", "DATA_DIR", "data", "directory of the SQLite database (when DATABASE_URL is empty)")
	e.String(databaseURL, "database-url", "DATABASE_URL", "", "postgres://... to use PostgreSQL instead of SQLite")
}

// layerSettings are the channel layer's settings. serve, layer check and
// unenroll (which closes sockets through the layer) take them, from flags
// or the environment; a flag wins over the environment, including over a
// bad environment value it replaces.
type layerSettings struct {
	Kind     string // memory, redis or channels_redis
	RedisURL string
	// Prefix is CHANNEL_PREFIX: prepended to every group to form its Redis
	// channel. Empty means the default, derived from the database
	// (channelPrefix).
	Prefix string

	urlErr error // a bad REDIS_URL, IP_REDIS or PORT_REDIS, unless -redis-url replaces it
}

// prefixFromDatabase describes CHANNEL_PREFIX's default for the commands
// that derive it from the database (serve, unenroll).
const prefixFromDatabase = "chatd:<first 12 characters of the database's deployment id>:, the same for every process on one database"

// layerFlags binds -channel-layer, -redis-url and -channel-prefix, whose
// default is described by prefixDefault.
func (e *envFlags) layerFlags(l *layerSettings, prefixDefault string) {
	kind, redisURL, urlErr := layerEnv(e.getenv)
	l.urlErr = urlErr
	e.fs.StringVar(&l.Kind, "channel-layer", kind, "memory (one process), redis (many processes) or channels_redis (many processes, sharing public rooms with a Django Channels site; docs/django.md) (CHANNEL_LAYER)")
	e.fs.StringVar(&l.RedisURL, "redis-url", redisURL, "Redis address for the redis layer, redis://host:port/db (REDIS_URL, or IP_REDIS and PORT_REDIS)")
	e.String(&l.Prefix, "channel-prefix", "CHANNEL_PREFIX", "", "prefix of the redis layer's channels, so that deployments sharing one Redis never see each other's rooms; default "+prefixDefault)
}

// validate checks the settings after fs has parsed the command line.
func (l *layerSettings) validate(fs *flag.FlagSet) error {
	l.Kind = strings.ToLower(strings.TrimSpace(l.Kind))
	l.RedisURL = strings.TrimSpace(l.RedisURL)
	if l.urlErr != nil && !flagGiven(fs, "redis-url") {
		return l.urlErr
	}
	switch l.Kind {
	case layerMemory:
	case layerRedis, layerChannelsRedis:
		if l.RedisURL == "" {
			return fmt.Errorf("the %s channel layer needs the Redis address: set REDIS_URL (e.g. redis://127.0.0.1:6379/0), IP_REDIS (and PORT_REDIS, default 6379) or -redis-url", l.Kind)
		}
	default:
		return fmt.Errorf("CHANNEL_LAYER (-channel-layer) must be memory, redis or channels_redis, not %q", l.Kind)
	}
	if l.RedisURL != "" {
		if err := checkRedisURL(l.RedisURL); err != nil {
			return fmt.Errorf("redis URL: %w", err)
		}
	}
	return checkChannelPrefix(l.Prefix)
}

// flagGiven reports whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
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
	case c.Presence != "on" && c.Presence != "off":
		return fmt.Errorf("PRESENCE must be on or off, not %q", c.Presence)
	case c.PresenceMaxList < 1:
		return fmt.Errorf("PRESENCE_MAX_LIST must be at least 1")
	case c.PresenceBatch < 10*time.Millisecond:
		return fmt.Errorf("PRESENCE_BATCH must be at least 10ms")
	case c.PresenceInterval < c.PresenceBatch:
		return fmt.Errorf("PRESENCE_INTERVAL must be at least PRESENCE_BATCH")
	case c.PresenceTTL < 2*c.PresenceInterval:
		return fmt.Errorf("PRESENCE_TTL must be at least twice PRESENCE_INTERVAL (a heartbeat may be lost)")
	case c.PresenceGrace < 0:
		return fmt.Errorf("PRESENCE_LEAVE_GRACE must not be negative")
	case c.TypingTimeout < 100*time.Millisecond:
		return fmt.Errorf("TYPING_TIMEOUT must be at least 100ms")
	case c.LoginFailures < 1:
		return fmt.Errorf("LOGIN_FAILURE_LIMIT must be at least 1")
	case c.LoginWindow < time.Second:
		return fmt.Errorf("LOGIN_FAILURE_WINDOW must be at least 1s")
	case c.APIRateLimit < 0:
		return fmt.Errorf("API_RATE_LIMIT must not be negative")
	case c.APIRateBurst < 1:
		return fmt.Errorf("API_RATE_BURST must be at least 1")
	}
	if err := c.limitsConfig.validate(); err != nil {
		return err
	}
	if err := c.adminConfig.validate(); err != nil {
		return err
	}
	if err := c.django.validate(); err != nil {
		return err
	}
	if err := c.djangoConfig.validate(c.Layer.Kind, &c.Layer.RedisURL); err != nil {
		return err
	}
	if c.Layer.Kind == layerChannelsRedis {
		if err := checkRedisURL(c.Layer.RedisURL); err != nil {
			return fmt.Errorf("redis URL: %w", err)
		}
	}
	if c.UnreadPoll < 100*time.Millisecond {
		return fmt.Errorf("UNREAD_POLL_INTERVAL must be at least 100ms")
	}
	if code, ok := web.ParseLanguage(c.Language); ok {
		c.Language = code
	} else if c.languageFromEnv {
		// LANGUAGE is also gettext's variable, which a shell may set to a
		// language chatd does not speak: start in English, and say so.
		c.languageWarning = fmt.Sprintf("LANGUAGE=%q names no language chatd speaks (en, es, pt); pages default to en", c.Language)
		c.Language = "en"
	} else {
		return fmt.Errorf("-language must be en, es or pt, not %q", c.Language)
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
  chatd layer check [flags]    send a message through the channel layer and back
  chatd migrate [flags]        create or upgrade the database schema
  chatd createuser|setpassword|deactivate|reactivate|grantadmin|revokeadmin ...
  chatd createcourse|renamecourse|deletecourse|enroll|unenroll|listusers|listcourses|members ...
  chatd createkey|listkeys|revokekey ...
                               manage accounts, courses and API keys (each takes -h);
                               they take -database-url and -data-dir (DATABASE_URL,
                               DATA_DIR) like serve
  chatd version                print the version

Each command takes -h. A flag that a command does not know is an error
(exit status 2).

Every flag can also be set by the environment variable named in brackets;
a flag given on the command line wins.

Flags:
`)
	fs.PrintDefaults()
}
