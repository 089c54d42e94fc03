package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"syscall"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/channelsredis"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/web"
	"github.com/chatd/chat/ws"
)

func dispatch(ctx context.Context, cmd string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "serve":
		cfg, err := parseConfig(args, getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr)
	case "version":
		e := commandFlags("version", "chatd version", "Print the version.", getenv, stderr)
		if err := e.parse(args, 0); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "chatd", version)
		return nil
	case "layer":
		if len(args) == 0 || args[0] != "check" {
			err := errors.New("usage: chatd layer check [flags] (see chatd layer check -h)")
			fmt.Fprintln(stderr, err)
			return &usageError{err}
		}
		return layerCheckCommand(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		e := commandFlags("migrate", "chatd migrate [flags]",
			"Create or upgrade the database schema and print its version.", getenv, stderr)
		var databaseURL, dataDir string
		e.storeFlags(&databaseURL, &dataDir)
		if err := e.parse(args, 0); err != nil {
			return err
		}
		return runMigrate(ctx, databaseURL, dataDir, stdout)
	}
	if slices.Contains(adminCommands, cmd) {
		a := &adminEnv{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, open: openStore}
		a.unenrolled = func(ctx context.Context, courseID, userID int64) error {
			return closeUnenrolled(ctx, a.store, *a.layer, a.databaseURL, a.dataDir, courseID, userID)
		}
		defer func() {
			if a.store != nil {
				a.store.Close()
			}
		}()
		return a.run(ctx, cmd, args)
	}
	err := fmt.Errorf("unknown command %q (see chatd -h)", cmd)
	fmt.Fprintln(stderr, "chatd:", err)
	return &usageError{err}
}

// commandFlags returns the flags of a command other than serve, whose usage
// (printed for -h and for a bad command line) is synopsis, summary and the
// flags.
func commandFlags(name, synopsis, summary string, getenv func(string) string, stderr io.Writer) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s\n", synopsis, summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(stderr, "\nFlags (a flag wins over the environment variable in brackets):\n")
			fs.PrintDefaults()
		}
	}
	return &envFlags{fs: fs, getenv: getenv}
}

// layerCheckCommand is "chatd layer check [flags]": the layer's settings
// come from -channel-layer, -redis-url and -channel-prefix, or the
// environment, exactly as for serve.
func layerCheckCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := commandFlags("layer check", "chatd layer check [flags]",
		"Send a message through the configured channel layer and back, as the Channels\n"+
			"tutorial's shell check does, and print each step.", getenv, stderr)
	var l layerSettings
	e.layerFlags(&l, "chatd: (the check uses a random group)")
	if err := e.parse(args, 0); err != nil {
		return err
	}
	if err := l.validate(e.fs); err != nil {
		return err
	}
	return runLayerCheck(ctx, l.Kind, l.RedisURL, l.Prefix, stdout)
}

// closeUnenrolled is the admin command unenroll's hook: it closes the
// user's open sockets in the course room (1008 "no longer enrolled") on the
// servers that share the configured channel layer, under the channel prefix
// those servers use (the same database gives the same default). That
// reaches them only through Redis: with the memory layer the servers are
// other processes this one cannot reach, and they find out themselves: the
// unenroll is a revocation in the store, which every process polls every
// ACCESS_RECHECK_INTERVAL (web.Server.Run).
func closeUnenrolled(ctx context.Context, st chat.Store, l layerSettings, databaseURL, dataDir string, courseID, userID int64) error {
	if l.Kind != layerRedis && l.Kind != layerChannelsRedis {
		return nil
	}
	u, err := st.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	prefix, _, err := channelPrefix(ctx, l.Prefix, st, databaseURL, dataDir)
	if err != nil {
		return err
	}
	layer, err := openLayer(ctx, l.Kind, l.RedisURL, prefix, func(string, []byte) {}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer layer.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return ws.PublishControl(pctx, layer, ws.Control{
		User:   u.Username,
		Group:  chat.CourseRoomKey(courseID),
		Code:   ws.ClosePolicyViolation,
		Reason: "no longer enrolled",
	})
}

// serve runs the server until ctx is cancelled, then drains: it stops
// accepting, closes every WebSocket with 1001 after what is queued, and
// returns once all are closed or DrainTimeout has passed.
func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	log := cfg.logger(stderr)
	raiseFileLimit(log)
	now := clockFrom(ctx) // time.Now, or a test's clock
	// mx is nil with METRICS=off: then nothing below is instrumented.
	mx := newMetrics(&cfg.adminConfig, log)

	hub := ws.NewHub(ws.Config{
		ReadLimit:      cfg.ReadLimit,
		SendQueueBytes: cfg.SendQueue,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PongTimeout,
		Echo:           cfg.Echo,
		RateLimit:      cfg.RateLimit,
		HistoryOnJoin:  cfg.HistoryOnJoin,
		Logger:         log,

		MaxConns:        cfg.maxConns(log),
		MaxConnsPerIP:   cfg.MaxConnsPerIP,
		MaxConnsPerUser: cfg.MaxConnsPerUser,
		UserRateLimit:   cfg.UserRateLimit.or(cfg.RateLimit),
		IPRateLimit:     cfg.IPRateLimit.or(2 * cfg.RateLimit),
		RoomRateLimit:   cfg.RoomRateLimit.or(4 * cfg.RateLimit),
		InvalidFrames:   cfg.InvalidFrames,
		Now:             now,

		Presence:           cfg.Presence == "on",
		PresenceMaxList:    cfg.PresenceMaxList,
		PresenceBatch:      cfg.PresenceBatch,
		PresenceInterval:   cfg.PresenceInterval,
		PresenceTTL:        cfg.PresenceTTL,
		PresenceLeaveGrace: cfg.PresenceGrace,
		TypingTimeout:      cfg.TypingTimeout,
	})
	if cfg.production() && cfg.hosts.AllowsAny() {
		log.Warn("ALLOWED_HOSTS contains '*' in production: the Host and Origin checks are OFF. " +
			"Any web site can open WebSockets to this server with its visitors' cookies (cross-site WebSocket hijacking), " +
			"and the server answers under any name (DNS rebinding). List the site's names in ALLOWED_HOSTS instead.")
	}
	if cfg.languageWarning != "" {
		log.Warn(cfg.languageWarning)
	}
	st, err := openStore(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	st = mx.Store(st)
	var counted *countingStore
	if cfg.DebugAddr != "" {
		counted = newCountingStore(st)
		st = counted
	}
	var publisher core.Publisher = hub
	var djpub *djangoPublisher
	if cfg.Layer.Kind == layerChannelsRedis {
		djpub = newDjangoPublisher(hub, !cfg.djangoConfig.courseGroups.IsZero(), log)
		publisher = djpub
	}
	node, err := core.New(core.Config{Store: st, HistoryOff: cfg.History == "off", Publisher: publisher, Logger: log})
	if err != nil {
		return err
	}
	hub.UseNode(node)
	var prefix, prefixSource string
	if cfg.Layer.Kind == layerRedis || cfg.Layer.Kind == layerChannelsRedis {
		if prefix, prefixSource, err = channelPrefix(ctx, cfg.Layer.Prefix, st, cfg.DatabaseURL, cfg.DataDir); err != nil {
			return err
		}
	}
	var layer chat.Layer
	var checkRoom func(string) error
	var bridgeStats func() any
	if djpub != nil {
		crl, err := openChannelsRedis(ctx, cfg, prefix, st, node, hub.Receive, log)
		if err != nil {
			return err
		}
		djpub.layer.Store(crl)
		layer, checkRoom = crl, crl.CheckRoom
		bridgeStats = func() any {
			return struct {
				channelsredis.Stats
				Unsent uint64 `json:"unsent"` // messages chatd could not queue for the Django side
			}{crl.Stats(), djpub.lost.Load()}
		}
	} else if layer, err = openLayer(ctx, cfg.Layer.Kind, cfg.Layer.RedisURL, prefix, hub.Receive, log); err != nil {
		return err
	}
	defer layer.Close()
	if djpub != nil {
		defer djpub.close() // sends what is queued, before the layer closes
	}
	if err := hub.Start(ctx, mx.Layer(layer)); err != nil {
		return err
	}
	recheck := cfg.AccessRecheck
	djLogins, djVerifier, err := openDjangoLogins(ctx, &cfg.django, st, log)
	if err != nil {
		return err
	}
	var external web.ExternalAuth
	var externalCourses web.ExternalCourses
	if djLogins != nil {
		defer djVerifier.Close()
		external = djLogins
		if djVerifier.HasCourses() {
			externalCourses = djangoCourses{djVerifier}
			warnOwnCourses(ctx, st, log)
		}
	}
	srv, err := web.NewServer(web.Config{
		Production:      cfg.production(),
		Hosts:           cfg.hosts,
		Logger:          log,
		Version:         version,
		Store:           st,
		SessionTTL:      cfg.SessionTTL,
		DisableSignup:   !cfg.AllowSignup,
		RequireLogin:    !cfg.AllowAnonymous,
		RecheckInterval: recheck,
		LoginFailures:   cfg.LoginFailures,
		LoginWindow:     cfg.LoginWindow,
		TrustProxy:      cfg.TrustProxy,

		LoginUserFailures: cfg.LoginUserFailures,
		LoginIPFailures:   cfg.LoginIPFailures,
		SignupLimit:       cfg.signupLimit(),
		SignupWindow:      cfg.SignupWindow,
		BodyTimeout:       cfg.BodyTimeout,
		RequestTimeout:    cfg.RequestTimeout,
		Now:               now,
		HealthDetails:     cfg.HealthDetails,
		APIRateLimit:      cfg.apiRateLimit(),
		APIRateBurst:      cfg.APIRateBurst,
		CheckRoom:         checkRoom,
		BridgeStats:       bridgeStats,
		External:          external,
		ExternalRecheck:   cfg.django.Recheck,
		Language:          cfg.Language,
		UnreadPoll:        cfg.UnreadPoll,
		ExternalCourses:   externalCourses,
	}, hub)
	if err != nil {
		return err
	}
	// Background work (session sweep, access re-checks) stops with ctx,
	// before the store closes.
	bgCtx, stopBg := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() {
		retention := core.Retention{MaxAge: cfg.HistoryMaxAge, MaxPerRoom: cfg.HistoryMaxPerRoom}
		go node.RunRetention(bgCtx, retention, cfg.HistoryPrune, hub.TrimHistory)
		srv.Run(bgCtx)
		close(bgDone)
	}()
	defer func() { stopBg(); <-bgDone }()

	admin, err := startAdmin(&cfg.adminConfig, mx, newCollector(hub, node, srv), log)
	if err != nil {
		return err
	}
	defer admin.stop()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	attrs := []any{"version", version, "addr", ln.Addr().String(), "environment", cfg.Environment,
		"layer", cfg.Layer.Kind, "store", storeName(cfg.DatabaseURL, cfg.DataDir), "history", cfg.History, "presence", cfg.Presence}
	if cfg.Layer.Kind == layerRedis {
		attrs = append(attrs, "redis", redactURL(cfg.Layer.RedisURL), "channel_prefix", prefix, "channel_prefix_from", prefixSource)
	}
	log.Info("chatd starting", attrs...)
	fmt.Fprintf(stdout, "chatd listening on http://%s/chat/\n", ln.Addr())
	admin.announce(stdout)

	if counted != nil {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on DEBUG_ADDR %s: %w", cfg.DebugAddr, err)
		}
		log.Info("debug endpoints", "url", "http://"+dln.Addr().String()+"/debug/vars")
		go serveDebug(bgCtx, dln, debugHandler(counted, node, hub), log)
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("chatd shutting down", "drain_timeout", cfg.DrainTimeout)
	drain, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- httpSrv.Shutdown(drain) }()
	// In-flight commits finish (their acks are queued) before the sockets
	// close with 1001; new messages are refused meanwhile.
	if err := node.Close(drain); err != nil {
		log.Warn("drain: messages still waiting to be stored were not stored", "err", err)
	}
	hubErr := hub.Shutdown(drain)
	httpErr := <-done
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("serve ended", "err", err)
	}
	if hubErr != nil || httpErr != nil {
		log.Warn("drain timed out; remaining connections were cut", "hub", hubErr, "http", httpErr)
	}
	log.Info("chatd stopped")
	return nil
}

// apiRateLimit is API_RATE_LIMIT for web.Config, where negative means off.
func (c *config) apiRateLimit() float64 {
	if c.APIRateLimit == 0 {
		return -1
	}
	return c.APIRateLimit
}

// raiseFileLimit lifts the soft limit on open files to the hard limit: each
// WebSocket is a file descriptor.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return
	}
	old := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		log.Debug("raised open-file limit", "from", old, "to", lim.Max)
	}
}
