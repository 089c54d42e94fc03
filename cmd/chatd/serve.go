package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	chat "github.com/chatd/chat"
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
		fmt.Fprintln(stdout, "chatd", version)
		return nil
	case "layer":
		if len(args) == 0 || args[0] != "check" {
			return fmt.Errorf("usage: chatd layer check (uses CHANNEL_LAYER, REDIS_URL or IP_REDIS/PORT_REDIS)")
		}
		kind, redisURL, err := layerConfigFromEnv(getenv)
		if err != nil {
			return err
		}
		return runLayerCheck(ctx, kind, redisURL, stdout)
	case "migrate":
		return runMigrate(ctx, getenv("DATABASE_URL"), dataDir(getenv), stdout)
	}
	if slices.Contains(adminCommands, cmd) {
		st, err := openStore(ctx, getenv("DATABASE_URL"), dataDir(getenv))
		if err != nil {
			return err
		}
		defer st.Close()
		a := &adminEnv{store: st, stdin: stdin, stdout: stdout, getenv: getenv,
			unenrolled: func(ctx context.Context, courseID, userID int64) error {
				return closeUnenrolled(ctx, st, getenv, courseID, userID)
			}}
		return a.run(ctx, cmd, args)
	}
	switch cmd {
	default:
		return fmt.Errorf("unknown command %q (see chatd -h)", cmd)
	}
}

// closeUnenrolled is the admin command unenroll's hook: it closes the
// user's open sockets in the course room (1008 "no longer enrolled") on the
// servers that share the configured channel layer. That reaches them only
// through Redis: with the memory layer the servers are other processes this
// one cannot reach, and they find out themselves, since a course room's
// sockets are re-checked before every message and every
// ACCESS_RECHECK_INTERVAL (web.Server.Run).
func closeUnenrolled(ctx context.Context, st chat.Store, getenv func(string) string, courseID, userID int64) error {
	kind, redisURL, err := layerConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	if kind != layerRedis {
		return nil
	}
	u, err := st.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	layer, err := openLayer(ctx, kind, redisURL, func(string, []byte) {}, slog.New(slog.DiscardHandler))
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

	hub := ws.NewHub(ws.Config{
		ReadLimit:      cfg.ReadLimit,
		SendQueueBytes: cfg.SendQueue,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PongTimeout,
		Echo:           cfg.Echo,
		RateLimit:      cfg.RateLimit,
		HistoryOnJoin:  cfg.HistoryOnJoin,
		Logger:         log,
	})
	st, err := openStore(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	var counted *countingStore
	if cfg.DebugAddr != "" {
		counted = newCountingStore(st)
		st = counted
	}
	node, err := core.New(core.Config{Store: st, HistoryOff: cfg.History == "off", Publisher: hub, Logger: log})
	if err != nil {
		return err
	}
	hub.UseNode(node)
	layer, err := openLayer(ctx, cfg.ChannelLayer, cfg.RedisURL, hub.Receive, log)
	if err != nil {
		return err
	}
	defer layer.Close()
	if err := hub.Start(ctx, layer); err != nil {
		return err
	}
	recheck := cfg.AccessRecheck
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
		go node.RunRetention(bgCtx, retention, cfg.HistoryPrune)
		srv.Run(bgCtx)
		close(bgDone)
	}()
	defer func() { stopBg(); <-bgDone }()

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
	log.Info("chatd starting", "version", version, "addr", ln.Addr().String(), "environment", cfg.Environment,
		"layer", cfg.ChannelLayer, "store", storeName(cfg.DatabaseURL, cfg.DataDir), "history", cfg.History)
	fmt.Fprintf(stdout, "chatd listening on http://%s/chat/\n", ln.Addr())

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

// dataDir returns DATA_DIR, or the default "data".
func dataDir(getenv func(string) string) string {
	if d := strings.TrimSpace(getenv("DATA_DIR")); d != "" {
		return d
	}
	return "data"
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
