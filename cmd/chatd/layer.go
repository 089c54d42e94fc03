package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/memory"
	redislayer "github.com/chatd/chat/redis"
	goredis "github.com/redis/go-redis/v9"
)

// Channel layer kinds accepted by CHANNEL_LAYER and -channel-layer.
const (
	layerMemory = "memory"
	layerRedis  = "redis"
)

// layerCheckWait bounds how long runLayerCheck waits for its message.
const layerCheckWait = 5 * time.Second

// layerEnv reads the channel layer's kind and Redis address from the
// environment, as defaults for the -channel-layer and -redis-url flags:
//
//   - CHANNEL_LAYER is memory (the default) or redis;
//   - REDIS_URL is the Redis address (redis://host:port/db, rediss:// for
//     TLS, unix:// for a socket);
//   - otherwise IP_REDIS and PORT_REDIS (default 6379), the names the
//     tutorials' deployment uses, make redis://IP_REDIS:PORT_REDIS/0.
//
// REDIS_URL wins when both are set. Nothing is refused here: urlErr reports
// a bad address, which matters only if no -redis-url flag replaces it, and
// layerSettings.validate checks the kind and the final address.
func layerEnv(getenv func(string) string) (kind, redisURL string, urlErr error) {
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	kind = strings.ToLower(env("CHANNEL_LAYER"))
	if kind == "" {
		kind = layerMemory
	}
	switch {
	case env("REDIS_URL") != "":
		redisURL = env("REDIS_URL")
		if err := checkRedisURL(redisURL); err != nil {
			return kind, "", fmt.Errorf("REDIS_URL: %w", err)
		}
	case env("IP_REDIS") != "":
		port := env("PORT_REDIS")
		if port == "" {
			port = "6379"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return kind, "", fmt.Errorf("PORT_REDIS must be a port number (1-65535), not %q", port)
		}
		redisURL = "redis://" + net.JoinHostPort(env("IP_REDIS"), port) + "/0"
	}
	if kind == layerChannelsRedis && redisURL == "" {
		// chatd's own traffic goes to the Django layer's first host.
		h, _, _ := strings.Cut(env("CHANNELS_REDIS_HOSTS"), ",")
		redisURL = strings.TrimSpace(h)
	}
	return kind, redisURL, nil
}

// checkRedisURL rejects addresses that are not Redis URLs, so a typo is
// reported at startup with the variable's name.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return fmt.Errorf("%s has no host (want redis://host:port/db)", redactURL(s))
		}
	case "unix":
	default:
		return fmt.Errorf("%s is not a redis://, rediss:// or unix:// URL", redactURL(s))
	}
	return nil
}

// openLayer opens the channel layer of the given kind, delivering to recv.
//
// The redis layer does not fail when Redis is unreachable at startup: it
// logs a warning, reports the outage through Err (and so the health
// endpoint), and connects by itself when Redis appears. openLayer also
// routes go-redis's own diagnostics (a process-wide setting) to log at
// debug level, since the layer already logs every state change once.
func openLayer(ctx context.Context, kind, redisURL, prefix string, recv chat.Receiver, log *slog.Logger) (chat.Layer, error) {
	switch kind {
	case layerMemory:
		return memory.New(recv), nil
	case layerRedis, layerChannelsRedis:
		// channels_redis: chatd's processes talk through chatd's own layer;
		// serve wraps it in the Django bridge (openChannelsRedis).
		if redisURL == "" {
			return nil, errors.New("the redis channel layer needs REDIS_URL (or IP_REDIS and PORT_REDIS)")
		}
		goredis.SetLogger(driverLogger{log: log.With("component", "go-redis")})
		l, err := redislayer.New(ctx, redislayer.Options{URL: redisURL, Prefix: prefix, Logger: log.With("component", "redis-layer")}, recv)
		if err != nil {
			return nil, err
		}
		return l, nil
	default:
		return nil, fmt.Errorf("unknown channel layer %q (want memory or redis)", kind)
	}
}

// driverLogger passes go-redis's internal messages to slog at debug level.
type driverLogger struct{ log *slog.Logger }

// Printf implements go-redis's logging interface.
func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	d.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

// runLayerCheck is "chatd layer check", the tutorial's shell test
// (channel_layer.send, then receive) as a command: it opens two instances of
// the configured layer, as two processes would, subscribes one to a fresh
// group, publishes from the other and waits up to layerCheckWait for the
// message to come back. It prints each step and the round-trip time, or
// returns an error that says which layer failed and why. On Redis the
// channels carry prefix (redislayer.DefaultPrefix if empty): the group is
// random, so the check never meets a deployment's traffic.
func runLayerCheck(ctx context.Context, kind, redisURL, prefix string, stdout io.Writer) error {
	where := kind + " layer"
	if kind == layerChannelsRedis {
		// The check covers chatd's own traffic, which channels_redis mode
		// carries on chatd's Redis layer.
		kind = layerRedis
	}
	if kind == layerRedis {
		where = "redis layer at " + redactURL(redisURL)
		if prefix == "" {
			prefix = redislayer.DefaultPrefix
		}
	}
	fail := func(step string, err error) error {
		return fmt.Errorf("layer check: %s: %s: %w", where, step, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*layerCheckWait)
	defer cancel()

	got := make(chan []byte, 1)
	recv := func(_ string, msg []byte) {
		select {
		case got <- msg:
		default:
		}
	}
	var receiver, sender chat.Layer
	switch kind {
	case layerMemory:
		// One process: both instances share one in-process bus.
		bus := memory.NewBus()
		receiver, sender = bus.Attach(recv), bus.Attach(func(string, []byte) {})
	case layerRedis:
		if redisURL == "" {
			return fmt.Errorf("layer check: the redis layer needs REDIS_URL (or IP_REDIS and PORT_REDIS)")
		}
		quiet := slog.New(slog.DiscardHandler)
		open := func(recv chat.Receiver) (chat.Layer, error) {
			l, err := redislayer.New(ctx, redislayer.Options{URL: redisURL, Prefix: prefix, Logger: quiet}, recv)
			if err != nil {
				return nil, err
			}
			if err := l.Err(); err != nil {
				_ = l.Close()
				return nil, err
			}
			return l, nil
		}
		var err error
		if receiver, err = open(recv); err != nil {
			return fail("connect", causeOf(err))
		}
		if sender, err = open(func(string, []byte) {}); err != nil {
			_ = receiver.Close()
			return fail("connect", causeOf(err))
		}
	default:
		return fmt.Errorf("layer check: unknown channel layer %q (want memory or redis)", kind)
	}
	defer sender.Close()
	defer receiver.Close()
	fmt.Fprintf(stdout, "%s: opened two instances (a receiver and a sender)\n", where)
	if kind == layerMemory {
		fmt.Fprintln(stdout, "note: the memory layer works inside one process only; use CHANNEL_LAYER=redis to run several chatd processes")
	}

	b := make([]byte, 8)
	_, _ = rand.Read(b)
	group := "chatd.layercheck." + hex.EncodeToString(b)
	if err := receiver.Subscribe(ctx, group); err != nil {
		return fail("subscribe", err)
	}
	if kind == layerRedis {
		fmt.Fprintf(stdout, "subscribed the receiver to group %q (Redis channel %q)\n", group, prefix+group)
	} else {
		fmt.Fprintf(stdout, "subscribed the receiver to group %q\n", group)
	}

	msg := fmt.Appendf(nil, `{"type":"layer_check","id":%q}`, hex.EncodeToString(b))
	start := time.Now()
	if err := sender.Publish(ctx, group, msg); err != nil {
		return fail("publish", err)
	}
	fmt.Fprintf(stdout, "published %s from the sender\n", msg)
	timer := time.NewTimer(layerCheckWait)
	defer timer.Stop()
	select {
	case m := <-got:
		rtt := time.Since(start)
		if string(m) != string(msg) {
			return fail("receive", fmt.Errorf("received %q, want %q", m, msg))
		}
		fmt.Fprintf(stdout, "received it back in %s\n", rtt.Round(time.Microsecond))
	case <-timer.C:
		return fail("receive", fmt.Errorf("the message did not arrive within %s", layerCheckWait))
	case <-ctx.Done():
		return fail("receive", ctx.Err())
	}
	_ = receiver.Unsubscribe(ctx, group)
	fmt.Fprintf(stdout, "OK: the %s works\n", where)
	return nil
}

// causeOf strips the layer's own description (address, time) from an
// unavailability error, which the check's message already gives, leaving
// the cause, such as "dial tcp ...: connection refused".
func causeOf(err error) error {
	if m, ok := err.(interface{ Unwrap() []error }); ok && errors.Is(err, redislayer.ErrUnavailable) {
		for _, e := range m.Unwrap() {
			if e != error(redislayer.ErrUnavailable) {
				return e
			}
		}
	}
	return err
}

// redactURL returns s with any password hidden, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
