// Package redis is the Redis channel layer: it lets many chatd processes
// share groups (rooms) through Redis pub/sub.
//
// Each process holds one pub/sub connection that carries all of its group
// subscriptions, and a small pool of ordinary connections for PUBLISH. A
// message is published once per message (never once per recipient); Redis
// delivers it once to every subscribed process, whose hub fans it out to its
// local connections.
//
// Delivery is at most once, as with Redis pub/sub itself. What this layer
// adds over channels_redis is its behaviour when Redis goes away:
//
//   - the layer notices a dead or frozen subscription connection (a closed
//     socket, or no reply to a PING for three ping intervals);
//   - it reconnects with exponential backoff (100 ms doubling up to
//     Options.MaxBackoff), never in a busy loop;
//   - on reconnection it subscribes again to every group it holds, by itself;
//   - while Redis is away, Publish and Subscribe return an error that wraps
//     ErrUnavailable, and Err reports the outage; Err is nil again once the
//     subscriptions are restored;
//   - it logs each state change once (lost, restored), not once per message
//     or per reconnection attempt.
//
// go-redis's PubSub does resubscribe after a reconnect of its own, but only
// when some goroutine is reading or writing on it, without backoff (its
// Channel helper retries every 100 ms) and without telling the caller whether
// it is connected. This package therefore owns the connection life cycle: it
// replaces a broken PubSub with a new one and subscribes it to its own
// record of groups, so the behaviour above does not depend on the driver's
// internals.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable is wrapped by every error the layer returns because Redis
// cannot be reached. It is a *chat.Error with code chat.EUNAVAILABLE, so
// errors.Is(err, ErrUnavailable) and chat.ErrorCode(err) both recognise it,
// and chat.ErrorMessage(err) gives text that is safe to show to a sender.
var ErrUnavailable = &chat.Error{
	Code:    chat.EUNAVAILABLE,
	Message: "Messages cannot be relayed to other servers right now; please try again shortly.",
}

// ErrClosed is returned by a Layer after Close.
var ErrClosed = errors.New("redis: layer closed")

// Defaults for Options.
const (
	DefaultPrefix       = "chatd:"
	DefaultTimeout      = 3 * time.Second
	DefaultPingInterval = time.Second
	DefaultMaxBackoff   = 5 * time.Second

	// minBackoff is the first wait between reconnection attempts.
	minBackoff = 100 * time.Millisecond
	// deadAfter is how many ping intervals without any reply make the
	// subscription connection count as dead.
	deadAfter = 3
	// subscribeChunk bounds the channels sent in one SUBSCRIBE when a
	// connection is restored.
	subscribeChunk = 500
)

// Options configure a Layer.
type Options struct {
	// URL is the Redis server: redis://[user:password@]host[:port][/db], or
	// rediss:// for TLS. Required.
	URL string

	// Prefix is prepended to every group name to form its Redis channel, so
	// that several deployments can share one Redis. Default DefaultPrefix.
	Prefix string

	// Logger receives the layer's state changes. Default slog.Default().
	Logger *slog.Logger

	// Timeout bounds every dial, read and write on the Redis connections,
	// so a frozen Redis turns into an error instead of a hang. Default
	// DefaultTimeout.
	Timeout time.Duration

	// PingInterval is how often an idle subscription connection is checked
	// with a PING; a connection that shows no sign of life for three
	// intervals is replaced. Default DefaultPingInterval.
	PingInterval time.Duration

	// MaxBackoff caps the wait between reconnection attempts, which starts
	// at 100 ms and doubles. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// health is one observation of the layer's state; err is nil when healthy.
type health struct {
	err error
}

// Layer is one process's attachment to Redis. It implements chat.Layer and
// is safe for concurrent use.
//
// Goroutines: the caller's goroutines run Publish, Subscribe and Unsubscribe.
// One supervisor goroutine (run) connects, reads the subscription connection
// and delivers messages to the Receiver, and reconnects after a failure; it
// alone changes the health state. While a connection is up, one watchdog
// goroutine pings it when idle and closes it when it stops answering.
//
// Lock order: subMu, then mu or wmu; mu and wmu are never held together.
type Layer struct {
	opt     Options
	recv    chat.Receiver
	log     *slog.Logger
	client  *goredis.Client
	display string // the URL without its password, for messages

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisor goroutine

	// subMu serialises every change to the Redis side of the subscription
	// set (SUBSCRIBE, UNSUBSCRIBE and the PING barriers that follow them),
	// so that Redis sees them in the order groups changed. It guards ps.
	subMu sync.Mutex
	ps    *goredis.PubSub // the live subscription connection; nil while down

	// mu guards groups and closed. It is held only for map access: the
	// supervisor read-locks it once per received message.
	mu     sync.RWMutex
	groups map[string]struct{} // the groups this process holds
	closed bool

	isClosed atomic.Bool             // mirrors closed for the Publish fast path
	state    atomic.Pointer[health]  // the current health, read by Err and Publish
	first    chan struct{}           // closed after the first connection attempt
	seq      atomic.Uint64           // source of barrier tokens
	wmu      sync.Mutex              // guards waiters
	waiters  map[string]chan<- error // barrier token -> waiting Subscribe

	restoreMu sync.Mutex // guards restored
	restored  []func()   // called after every reconnection (OnRestore)
	restores  atomic.Uint64
}

var (
	_ chat.Layer           = (*Layer)(nil)
	_ chat.RestoreNotifier = (*Layer)(nil)
)

// OnRestore implements chat.RestoreNotifier: f runs after every
// reconnection, once every held group is subscribed again. Messages
// published while the layer was down were lost to this process; f is the
// caller's cue to recover them (chatd reads them from the store).
func (l *Layer) OnRestore(f func()) {
	l.restoreMu.Lock()
	l.restored = append(l.restored, f)
	l.restoreMu.Unlock()
}

// Restores returns how many times the subscription connection was restored
// after a loss since New.
func (l *Layer) Restores() uint64 { return l.restores.Load() }

// New connects to Redis and returns a Layer that delivers the messages of
// its subscribed groups to recv.
//
// New waits for the first connection attempt (bounded by ctx and
// Options.Timeout) but does not fail when Redis is unreachable: it returns a
// Layer whose Err reports the outage and which connects by itself when Redis
// appears, so that a server can start before its Redis. New fails only for
// invalid options, or when ctx ends first.
func New(ctx context.Context, opt Options, recv chat.Receiver) (*Layer, error) {
	if opt.URL == "" {
		return nil, errors.New("redis: no URL given")
	}
	ropt, err := goredis.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: bad URL %q: %w", redact(opt.URL), err)
	}
	if recv == nil {
		return nil, errors.New("redis: nil receiver")
	}
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.PingInterval <= 0 {
		opt.PingInterval = DefaultPingInterval
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	ropt.DialTimeout = opt.Timeout
	ropt.ReadTimeout = opt.Timeout
	ropt.WriteTimeout = opt.Timeout
	// One dial attempt per operation: the layer retries on its own schedule,
	// and a publish to a dead server should fail at once, not after the
	// driver's five attempts.
	ropt.DialerRetries = 1
	// No command retries: a retried PUBLISH whose first attempt did reach
	// Redis would deliver the message twice. The layer is at most once.
	ropt.MaxRetries = -1
	ropt.DisableIdentity = true
	ropt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	lctx, cancel := context.WithCancel(context.Background())
	l := &Layer{
		opt:     opt,
		recv:    recv,
		log:     opt.Logger,
		client:  goredis.NewClient(ropt),
		display: redact(opt.URL),
		ctx:     lctx,
		cancel:  cancel,
		groups:  make(map[string]struct{}),
		first:   make(chan struct{}),
		waiters: make(map[string]chan<- error),
	}
	l.state.Store(&health{err: &unavailableError{msg: "redis: connecting to " + l.display, cause: errors.New("no connection yet")}})
	l.wg.Add(1)
	go l.run()
	select {
	case <-l.first:
		return l, nil
	case <-ctx.Done():
		_ = l.Close()
		return nil, fmt.Errorf("redis: connecting to %s: %w", l.display, ctx.Err())
	}
}

// Publish sends msg to every process subscribed to group. It fails at once,
// with an error wrapping ErrUnavailable, while the layer knows Redis is away;
// otherwise it fails if the PUBLISH fails. An error means the message was
// probably not delivered (after a timeout it may still have been, once).
func (l *Layer) Publish(ctx context.Context, group string, msg []byte) error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	if h := l.state.Load(); h.err != nil {
		return &unavailableError{msg: fmt.Sprintf("redis: publish to group %q: server unavailable", group), cause: causeOf(h.err)}
	}
	if err := l.client.Publish(ctx, l.opt.Prefix+group, msg).Err(); err != nil {
		if l.isClosed.Load() {
			return ErrClosed
		}
		if ctx.Err() != nil {
			return fmt.Errorf("redis: publish to group %q: %w", group, ctx.Err())
		}
		return &unavailableError{msg: fmt.Sprintf("redis: publish to group %q: server unavailable", group), cause: err}
	}
	return nil
}

// Subscribe makes this process receive group's messages. It returns once
// Redis has confirmed the subscription, so a message published anywhere
// after Subscribe returns is delivered. Subscribing twice is the same as
// once.
//
// The layer records the group first and holds it until Unsubscribe, even
// when Subscribe returns an error: an error wrapping ErrUnavailable (Redis is
// away) or ctx's error means the subscription is not confirmed yet, not that
// it was abandoned; the layer completes it as soon as Redis is reachable. A
// caller that gives up on the group must call Unsubscribe. (If ctx is done
// before the call, Subscribe does nothing.)
func (l *Layer) Subscribe(ctx context.Context, group string) error {
	fail := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("redis: subscribe to group %q: %w (the group is held; the layer completes the subscription)", group, ctx.Err())
		}
		return &unavailableError{msg: fmt.Sprintf("redis: subscribe to group %q: server unavailable (the group is held and will be subscribed when the connection returns)", group), cause: err}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis: subscribe to group %q: %w", group, err)
	}
	l.subMu.Lock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.subMu.Unlock()
		return ErrClosed
	}
	_, had := l.groups[group]
	l.groups[group] = struct{}{}
	l.mu.Unlock()
	ps := l.ps
	if ps == nil {
		l.subMu.Unlock()
		return fail(causeOf(l.Err()))
	}
	var err error
	if !had {
		err = ps.Subscribe(ctx, l.opt.Prefix+group)
	}
	// The PING barrier: Redis answers commands on one connection in order,
	// so the PONG for this token arrives after the SUBSCRIBE took effect.
	// A repeated Subscribe waits on a barrier too, in case the first one is
	// still in flight.
	var token string
	var done <-chan error
	if err == nil {
		token, done = l.addWaiter()
		err = ps.Ping(ctx, token)
	}
	l.subMu.Unlock()
	if err != nil {
		// The connection is failing; the supervisor replaces it, and the
		// new one is subscribed to every held group, this one included.
		if token != "" {
			l.removeWaiter(token)
		}
		return fail(err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		l.removeWaiter(token)
		err = ctx.Err()
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Unsubscribe stops delivery of group's messages to this process. No
// message of group is handed to the Receiver after Unsubscribe returns,
// except one whose delivery had already begun. It never fails for lack of
// Redis: the group is forgotten, and a restored connection does not
// subscribe to it again.
func (l *Layer) Unsubscribe(ctx context.Context, group string) error {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.mu.Lock()
	_, had := l.groups[group]
	delete(l.groups, group)
	l.mu.Unlock()
	if had && l.ps != nil {
		// An error here means the connection is failing; the supervisor
		// replaces it, and the new one will not carry the group.
		_ = l.ps.Unsubscribe(ctx, l.opt.Prefix+group)
	}
	return nil
}

// Err reports why the layer cannot deliver between processes right now: nil
// when connected and subscribed to every group it holds, an error wrapping
// ErrUnavailable while Redis is away, ErrClosed after Close.
func (l *Layer) Err() error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	return l.state.Load().err
}

// Close disconnects from Redis and stops delivery. It waits for the
// supervisor goroutine, so no message is delivered after Close returns.
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.isClosed.Store(true)
	l.mu.Unlock()

	l.cancel()
	l.subMu.Lock()
	if l.ps != nil {
		_ = l.ps.Close() // unblocks the supervisor's read
		l.ps = nil
	}
	l.subMu.Unlock()
	l.wg.Wait()
	l.failWaiters(ErrClosed)
	return l.client.Close()
}

// run is the supervisor goroutine: it connects, serves the connection until
// it fails, and reconnects with backoff, until Close.
func (l *Layer) run() {
	defer l.wg.Done()
	var (
		attempt   int       // consecutive failures since the layer was last up
		wasUp     bool      // the layer has been up at least once
		up        bool      // the layer is up now
		downErr   error     // the failure being reported (for the log)
		downSince time.Time // when the layer went down
		firstOnce sync.Once
	)
	markUp := func() {
		l.state.Store(&health{})
		if !wasUp {
			l.log.Info("redis layer connected", "url", l.display, "groups", l.groupCount())
		} else {
			l.log.Info("redis layer reconnected and resubscribed; live delivery resumed",
				"url", l.display, "groups", l.groupCount(), "down_for", time.Since(downSince).Round(time.Millisecond))
		}
		if wasUp {
			l.restores.Add(1)
			l.restoreMu.Lock()
			fs := slices.Clone(l.restored)
			l.restoreMu.Unlock()
			for _, f := range fs {
				f()
			}
		}
		wasUp, up, attempt = true, true, 0
		firstOnce.Do(func() { close(l.first) })
	}
	markDown := func(err error) {
		msg := fmt.Sprintf("redis: %s unavailable since %s", l.display, time.Now().UTC().Format(time.RFC3339))
		if up || downErr == nil {
			// A state change: log it once.
			downSince = time.Now()
			if wasUp {
				l.log.Warn("redis layer lost its connection; live delivery between processes is paused until it returns",
					"url", l.display, "err", err, "groups", l.groupCount())
			} else {
				l.log.Warn("redis layer cannot reach redis; it will keep trying", "url", l.display, "err", err)
			}
			l.state.Store(&health{err: &unavailableError{msg: msg, cause: err}})
		} else {
			// Still down: keep the first cause's timestamp, refresh the cause.
			prev := l.state.Load().err.(*unavailableError)
			l.state.Store(&health{err: &unavailableError{msg: prev.msg, cause: err}})
		}
		up, downErr = false, err
		firstOnce.Do(func() { close(l.first) })
	}

	for epoch := uint64(1); ; epoch++ {
		ps, err := l.connect(epoch)
		if err == nil {
			err = l.serve(ps, epoch, markUp)
		}
		if l.ctx.Err() != nil {
			return
		}
		markDown(err)
		delay := backoff(attempt, l.opt.MaxBackoff)
		attempt++
		l.log.Debug("redis layer reconnecting", "url", l.display, "err", err, "attempt", attempt, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// connect opens a new subscription connection, subscribes it to every held
// group and sends the epoch's ready barrier; serve reports the layer up when
// that barrier's PONG arrives. It installs the connection as l.ps.
func (l *Layer) connect(epoch uint64) (*goredis.PubSub, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 2*l.opt.Timeout)
	defer cancel()
	ps := l.client.Subscribe(ctx) // no I/O yet
	// The first PING dials and runs the handshake outside the locks.
	if err := ps.Ping(ctx, "h"); err != nil {
		_ = ps.Close()
		return nil, err
	}
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.mu.RLock()
	closed := l.closed
	chans := make([]string, 0, len(l.groups))
	for g := range l.groups {
		chans = append(chans, l.opt.Prefix+g)
	}
	l.mu.RUnlock()
	if closed {
		_ = ps.Close()
		return nil, ErrClosed
	}
	for len(chans) > 0 {
		n := min(len(chans), subscribeChunk)
		if err := ps.Subscribe(ctx, chans[:n]...); err != nil {
			_ = ps.Close()
			return nil, err
		}
		chans = chans[n:]
	}
	if err := ps.Ping(ctx, readyToken(epoch)); err != nil {
		_ = ps.Close()
		return nil, err
	}
	l.ps = ps
	return ps, nil
}

// serve reads ps until it fails: it delivers messages, resolves barriers and
// calls markUp when the epoch's ready barrier arrives. A watchdog goroutine
// runs beside it. serve removes ps from l.ps and closes it before returning
// the reason the connection ended.
func (l *Layer) serve(ps *goredis.PubSub, epoch uint64, markUp func()) error {
	var lastSeen atomic.Int64 // UnixNano of the last thing read from ps
	lastSeen.Store(time.Now().UnixNano())
	var dead atomic.Pointer[error] // why the watchdog closed ps, if it did
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { l.watch(ps, &lastSeen, &dead, stop) })
	defer func() {
		close(stop)
		wg.Wait()
	}()

	ready := readyToken(epoch)
	var err error
	for {
		var v any
		v, err = ps.Receive(l.ctx)
		if err != nil {
			break
		}
		lastSeen.Store(time.Now().UnixNano())
		switch m := v.(type) {
		case *goredis.Message:
			group, ok := strings.CutPrefix(m.Channel, l.opt.Prefix)
			if !ok {
				continue
			}
			l.mu.RLock()
			_, held := l.groups[group]
			held = held && !l.closed
			l.mu.RUnlock()
			if held {
				l.recv(group, []byte(m.Payload))
			}
		case *goredis.Pong:
			switch {
			case m.Payload == ready:
				markUp()
			case strings.HasPrefix(m.Payload, "w"):
				l.resolveWaiter(m.Payload, nil)
			}
		case *goredis.Subscription:
			// Confirmations are tracked with PING barriers instead.
		}
	}

	l.subMu.Lock()
	if l.ps == ps {
		l.ps = nil
	}
	l.subMu.Unlock()
	_ = ps.Close()
	if p := dead.Load(); p != nil {
		err = *p
	}
	l.failWaiters(err)
	return err
}

// watch is the watchdog of one connection: it PINGs ps when nothing was read
// for a ping interval and closes it when nothing was read for deadAfter
// intervals, which ends serve's read. It stops when stop is closed.
func (l *Layer) watch(ps *goredis.PubSub, lastSeen *atomic.Int64, dead *atomic.Pointer[error], stop <-chan struct{}) {
	t := time.NewTicker(l.opt.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, lastSeen.Load()))
		if idle >= deadAfter*l.opt.PingInterval {
			err := fmt.Errorf("no reply from redis for %s", idle.Round(time.Millisecond))
			dead.Store(&err)
			_ = ps.Close()
			return
		}
		if idle >= l.opt.PingInterval {
			ctx, cancel := context.WithTimeout(l.ctx, l.opt.Timeout)
			err := ps.Ping(ctx, "h")
			cancel()
			if err != nil && l.ctx.Err() == nil {
				err = fmt.Errorf("health check: %w", err)
				dead.Store(&err)
				_ = ps.Close()
				return
			}
		}
	}
}

// addWaiter registers a barrier token and returns it with the channel its
// outcome arrives on.
func (l *Layer) addWaiter() (string, <-chan error) {
	token := "w" + strconv.FormatUint(l.seq.Add(1), 10)
	ch := make(chan error, 1)
	l.wmu.Lock()
	l.waiters[token] = ch
	l.wmu.Unlock()
	return token, ch
}

func (l *Layer) removeWaiter(token string) {
	l.wmu.Lock()
	delete(l.waiters, token)
	l.wmu.Unlock()
}

func (l *Layer) resolveWaiter(token string, err error) {
	l.wmu.Lock()
	ch, ok := l.waiters[token]
	delete(l.waiters, token)
	l.wmu.Unlock()
	if ok {
		ch <- err
	}
}

// failWaiters ends every pending barrier with err. Waiters are registered
// only while l.ps is set, under subMu, so the ones failed after a connection
// was removed all belong to that connection.
func (l *Layer) failWaiters(err error) {
	if err == nil {
		err = errors.New("connection lost")
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for token, ch := range l.waiters {
		ch <- err
		delete(l.waiters, token)
	}
}

func (l *Layer) groupCount() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.groups)
}

// readyToken names the PING barrier that marks an epoch's resubscription as
// complete.
func readyToken(epoch uint64) string { return "r" + strconv.FormatUint(epoch, 10) }

// backoff returns the wait before reconnection attempt n (0-based): 100 ms
// doubling up to max, with ±20% jitter so that many processes do not
// reconnect in step.
func backoff(n int, max time.Duration) time.Duration {
	d := minBackoff
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// unavailableError is an error caused by Redis being unreachable. It wraps
// both ErrUnavailable and the underlying cause.
type unavailableError struct {
	msg   string // what failed, with the "redis: " prefix
	cause error
}

func (e *unavailableError) Error() string {
	return e.msg + ": " + e.cause.Error()
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// causeOf returns the underlying cause of an error from Err, for messages
// that describe another operation.
func causeOf(err error) error {
	var u *unavailableError
	if errors.As(err, &u) {
		return u.cause
	}
	if err == nil {
		return errors.New("not connected")
	}
	return err
}

// redact returns rawURL with any password replaced, for logs and errors.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
