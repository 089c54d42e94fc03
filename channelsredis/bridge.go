package channelsredis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// sendScript adds a message to each inbox (KEYS) that holds fewer than its
// capacity, dates it and sets the inbox's expiry, atomically, and returns
// how many inboxes were full. ARGV: the n payloads, the n capacities, the
// score, the expiry in seconds. It does what channels_redis's group_send
// does, so a Django process reading its inbox cannot tell chatd's send
// from its own.
var sendScript = goredis.NewScript(`
local n = #KEYS
local full = 0
for i = 1, n do
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
    redis.call('ZADD', KEYS[i], ARGV[2 * n + 1], ARGV[i])
    redis.call('EXPIRE', KEYS[i], ARGV[2 * n + 2])
  else
    full = full + 1
  end
end
return full
`)

// leaseScript takes or renews a room's lease (KEYS[1]) for ARGV[1] for
// ARGV[2] ms; it returns 1 if ARGV[1] holds it afterwards.
var leaseScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes a lease held by ARGV[1].
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// leaseTTL is how long a room's lease lasts without a Django event: after
// a chatd process dies, another takes its rooms' events after at most this.
const leaseTTL = 10 * time.Second

// maxSkew is the clock difference with the Redis server worth a warning:
// channels_redis dates and expires messages by the sender's clock.
const maxSkew = 5 * time.Second

// bridge speaks channels_redis for the public rooms; see the package doc.
type bridge struct {
	opt     Options
	log     *slog.Logger
	codec   *codec
	clients []*goredis.Client // one per host, in the Django setting's order
	id      string            // this process: 12 hex characters
	dep     string            // the deployment: 12 hex characters
	held    groupSet

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// core: names of this process's channels. localMu guards local.
	localMu sync.Mutex
	local   map[string]string // part after '!' -> Django group

	// pubsub: one subscription connection per host, and PING barriers.
	pss     []*goredis.PubSub
	seq     atomic.Uint64
	wmu     sync.Mutex
	waiters map[string]chan struct{}

	err     atomic.Pointer[error] // the last failure, nil when healthy
	retry   atomic.Bool           // a join failed: the refresher retries soon
	lastLog atomic.Int64          // when "inboxes full" was last logged (unix ns)

	sent, full, received, ignored, undecodable, skipped, silent atomic.Uint64
}

func newBridge(ctx context.Context, opt Options) (*bridge, error) {
	c := &codec{json: opt.Serializer == SerializerJSON, ttl: opt.Expiry + 10*time.Second, now: opt.Now}
	if opt.Kind == KindCore {
		c.prefixLen = opt.RandomPrefix
	}
	for _, k := range opt.SymmetricKeys {
		c.keys = append(c.keys, newFernetKey(k))
	}
	dep := strings.ToLower(opt.Deployment)
	if len(dep) > 12 {
		dep = dep[:12]
	}
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	bctx, cancel := context.WithCancel(context.Background())
	b := &bridge{
		opt:     opt,
		log:     opt.Logger,
		codec:   c,
		id:      hex.EncodeToString(idb[:]),
		dep:     dep,
		held:    groupSet{groups: make(map[string]chat.Room)},
		ctx:     bctx,
		cancel:  cancel,
		local:   make(map[string]string),
		waiters: make(map[string]chan struct{}),
	}
	for _, h := range opt.Hosts {
		ro, err := goredis.ParseURL(h)
		if err != nil {
			cancel()
			b.closeClients()
			return nil, fmt.Errorf("channelsredis: bad host URL %q: %w", redact(h), err)
		}
		ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = opt.Timeout, opt.Timeout, opt.Timeout
		ro.DialerRetries = 1
		ro.MaxRetries = -1 // never send a group_send twice
		ro.DisableIdentity = true
		ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		b.clients = append(b.clients, goredis.NewClient(ro))
	}
	b.checkClock(ctx)
	if opt.Kind == KindCore {
		b.wg.Go(b.readInbox)
	} else {
		for _, cl := range b.clients {
			ps := cl.Subscribe(bctx)
			b.pss = append(b.pss, ps)
			b.wg.Go(func() { b.readSubscriptions(ps) })
			b.wg.Go(func() { b.pingSubscriptions(ps) })
		}
	}
	b.wg.Go(b.refresh)
	return b, nil
}

// checkClock warns when this host's clock and the Redis server's differ by
// more than maxSkew.
func (b *bridge) checkClock(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, b.opt.Timeout)
	defer cancel()
	t, err := b.clients[0].Time(ctx).Result()
	if err != nil {
		b.fail(err)
		b.log.Warn("channels_redis bridge cannot reach redis yet; it will keep trying", "err", err)
		return
	}
	if d := b.opt.Now().Sub(t); d > maxSkew || d < -maxSkew {
		b.log.Warn("this host's clock differs from the redis server's; channels_redis expires messages by the sender's clock, so keep every host's clock in sync (NTP)",
			"skew", d.Round(time.Millisecond), "expiry", b.opt.Expiry)
	}
}

func (b *bridge) fail(err error) {
	if err == nil || b.ctx.Err() != nil {
		return
	}
	e := fmt.Errorf("channelsredis: %w", err)
	b.err.Store(&e)
}

// healthy records that Redis answers again. The memberships are added
// again by the refresher (within two seconds), not here: healthy runs on
// the readers, and a pub/sub join waits for its reader.
func (b *bridge) healthy() {
	if b.err.Swap(nil) != nil {
		b.log.Info("channels_redis bridge: redis answers again; rejoining the Django groups")
		b.retry.Store(true)
	}
}

// Err reports the bridge's last failure (nil when healthy).
func (b *bridge) Err() error {
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *bridge) stats() Stats {
	return Stats{Sent: b.sent.Load(), Full: b.full.Load(), Received: b.received.Load(),
		Ignored: b.ignored.Load(), Undecodable: b.undecodable.Load(), Skipped: b.skipped.Load(), Silent: b.silent.Load()}
}

func (b *bridge) client(value string) *goredis.Client {
	return b.clients[shard(value, len(b.clients))]
}

// --- names -----------------------------------------------------------------

// ownPrefix starts every channel name of this deployment's chatd processes.
func (b *bridge) ownPrefix() string { return "specific.chatd" + b.dep }

// inbox is this process's channel name up to its '!' (core).
func (b *bridge) inbox() string { return b.ownPrefix() + b.id + "!" }

// channelName returns this process's channel in Django group g (core):
// the inbox, then the group's name (or a hash of it, if it would not fit
// in 99 characters).
func (b *bridge) channelName(g string) string {
	local := g
	if len(b.inbox())+len(g) >= MaxNameLen {
		sum := sha256.Sum256([]byte(g))
		local = "h" + hex.EncodeToString(sum[:10])
	}
	b.localMu.Lock()
	b.local[local] = g
	b.localMu.Unlock()
	return b.inbox() + local
}

func (b *bridge) groupKey(g string) string { return b.opt.Prefix + ":group:" + g }

func (b *bridge) pubsubChannel(g string) string { return b.opt.Prefix + "__group__" + g }

func (b *bridge) leaseKey(g string) string {
	return b.opt.Prefix + ":chatd:" + b.dep + ":lease:" + g
}

// --- membership -------------------------------------------------------------

// join makes this process a member of Django group g (room's group).
func (b *bridge) join(ctx context.Context, g string, room chat.Room) {
	b.held.add(g, room)
	if err := b.joinRedis(ctx, g); err != nil {
		b.fail(err)
		b.retry.Store(true)
		b.log.Warn("channels_redis bridge: cannot join the Django group; will retry", "group", g, "err", err)
	}
}

func (b *bridge) joinRedis(ctx context.Context, g string) error {
	ctx, cancel := context.WithTimeout(ctx, b.opt.Timeout)
	defer cancel()
	if b.opt.Kind == KindCore {
		score := float64(b.opt.Now().UnixNano()) / 1e9
		cl := b.client(g)
		_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZAdd(ctx, b.groupKey(g), goredis.Z{Score: score, Member: b.channelName(g)})
			p.Expire(ctx, b.groupKey(g), b.opt.GroupExpiry)
			return nil
		})
		return err
	}
	ch := b.pubsubChannel(g)
	ps := b.pss[shard(ch, len(b.pss))]
	if err := ps.Subscribe(ctx, ch); err != nil {
		return err
	}
	// A PING on the subscription connection is answered after the
	// SUBSCRIBE took effect: wait for it, so a group_send made after join
	// returns is received.
	token := "cr" + strconv.FormatUint(b.seq.Add(1), 10)
	done := make(chan struct{})
	b.wmu.Lock()
	b.waiters[token] = done
	b.wmu.Unlock()
	defer func() {
		b.wmu.Lock()
		delete(b.waiters, token)
		b.wmu.Unlock()
	}()
	if err := ps.Ping(ctx, token); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave ends this process's membership of g and gives up its lease.
func (b *bridge) leave(ctx context.Context, g string) {
	if !b.held.remove(g) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.opt.Timeout)
	defer cancel()
	var err error
	if b.opt.Kind == KindCore {
		err = b.client(g).ZRem(ctx, b.groupKey(g), b.channelName(g)).Err()
	} else {
		ch := b.pubsubChannel(g)
		err = b.pss[shard(ch, len(b.pss))].Unsubscribe(ctx, ch)
	}
	if err == nil {
		err = releaseScript.Run(ctx, b.clients[0], []string{b.leaseKey(g)}, b.id).Err()
	}
	if err != nil && ctx.Err() == nil {
		b.log.Debug("channels_redis bridge: leave", "group", g, "err", err)
	}
}

// rejoin adds every held membership again (core: with a fresh score).
func (b *bridge) rejoin() {
	failed := false
	for _, g := range b.held.list() {
		if b.ctx.Err() != nil {
			return
		}
		if err := b.joinRedis(b.ctx, g); err != nil {
			b.fail(err)
			failed = true
			break
		}
	}
	b.retry.Store(failed)
}

// refresh adds the memberships again every GroupRefresh – channels_redis
// forgets a member GroupExpiry after it joined, however active – and every
// two seconds while a join has failed.
func (b *bridge) refresh() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if b.retry.Load() || time.Since(last) >= b.opt.GroupRefresh {
			last = time.Now()
			b.rejoin()
		}
	}
}

// --- sending ----------------------------------------------------------------

// groupSend sends ev to every member of Django group g except this
// deployment's chatd processes (which get the message through chatd's own
// layer), as channels_redis's group_send does. It returns how many inboxes
// were full.
func (b *bridge) groupSend(ctx context.Context, g string, ev []Field) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opt.Timeout)
	defer cancel()
	if b.opt.Kind == KindPubSub {
		payload, err := b.codec.encode(ev, nil, false)
		if err != nil {
			return 0, err
		}
		ch := b.pubsubChannel(g)
		if err := b.client(ch).Publish(ctx, ch, payload).Err(); err != nil {
			b.fail(err)
			return 0, fmt.Errorf("channelsredis: group_send to %s: %w", g, err)
		}
		b.sent.Add(1)
		return 0, nil
	}
	now := b.opt.Now()
	gcl := b.client(g)
	var members []string
	_, err := gcl.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, b.groupKey(g), "0", strconv.FormatInt(now.Unix()-int64(b.opt.GroupExpiry/time.Second), 10))
		return nil
	})
	if err == nil {
		members, err = gcl.ZRange(ctx, b.groupKey(g), 0, -1).Result()
	}
	if err != nil {
		b.fail(err)
		return 0, fmt.Errorf("channelsredis: group_send to %s: %w", g, err)
	}
	// Bucket the members by inbox: one message per inbox naming its
	// channels, as channels_redis does.
	own := b.ownPrefix()
	buckets := make(map[string][]string)
	var order []string
	for _, m := range members {
		if strings.HasPrefix(m, own) {
			continue
		}
		k := nonLocal(m)
		if _, ok := buckets[k]; !ok {
			order = append(order, k)
		}
		buckets[k] = append(buckets[k], m)
	}
	if len(order) == 0 {
		b.sent.Add(1)
		return 0, nil
	}
	type batch struct {
		keys []string
		args []any
	}
	byShard := make(map[int]*batch)
	var shards []int
	for _, k := range order {
		payload, err := b.codec.encode(ev, buckets[k], true)
		if err != nil {
			return 0, err
		}
		s := shard(k, len(b.clients))
		bt := byShard[s]
		if bt == nil {
			bt = &batch{}
			byShard[s] = bt
			shards = append(shards, s)
		}
		bt.keys = append(bt.keys, b.opt.Prefix+k)
		bt.args = append(bt.args, payload)
	}
	score := strconv.FormatFloat(float64(now.UnixNano())/1e9, 'f', 7, 64)
	cutoff := strconv.FormatInt(now.Unix()-int64(b.opt.Expiry/time.Second), 10)
	expiry := strconv.FormatInt(int64(b.opt.Expiry/time.Second), 10)
	full := 0
	for _, s := range shards {
		bt := byShard[s]
		cl := b.clients[s]
		_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range bt.keys {
				p.ZRemRangeByScore(ctx, k, "0", cutoff)
			}
			return nil
		})
		if err != nil {
			b.fail(err)
			return full, fmt.Errorf("channelsredis: group_send to %s: %w", g, err)
		}
		args := bt.args
		for range bt.keys {
			args = append(args, b.opt.Capacity)
		}
		args = append(args, score, expiry)
		n, err := sendScript.Run(ctx, cl, bt.keys, args...).Int()
		if err != nil {
			b.fail(err)
			return full, fmt.Errorf("channelsredis: group_send to %s: %w", g, err)
		}
		full += n
	}
	b.sent.Add(1)
	if full > 0 {
		b.full.Add(uint64(full))
		// channels_redis only logs this at INFO; chatd says it louder, at
		// most once a minute.
		if last := b.lastLog.Load(); time.Since(time.Unix(0, last)) > time.Minute && b.lastLog.CompareAndSwap(last, time.Now().UnixNano()) {
			b.log.Warn("channels_redis bridge: Django inboxes over capacity dropped messages (their consumers are not keeping up; raise capacity on both sides)",
				"group", g, "full_inboxes", full, "total_dropped", b.full.Load())
		}
	}
	return full, nil
}

// --- receiving --------------------------------------------------------------

// readInbox pops this process's inbox (core) until the bridge closes.
func (b *bridge) readInbox() {
	key := b.opt.Prefix + b.inbox()
	cl := b.client(b.inbox())
	delay := 100 * time.Millisecond
	for b.ctx.Err() == nil {
		res, err := cl.BZPopMin(b.ctx, 2*time.Second, key).Result()
		if errors.Is(err, goredis.Nil) {
			b.healthy()
			continue
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.fail(err)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		b.healthy()
		member, _ := res.Member.(string)
		ev, chans, err := b.codec.decode([]byte(member), true)
		if err != nil {
			b.undecodable.Add(1)
			b.log.Warn("channels_redis bridge: cannot read a message from the Django side (check serializer and symmetric keys)", "err", err)
			continue
		}
		seen := make(map[string]bool, 1)
		for _, ch := range chans {
			_, local, ok := strings.Cut(ch, "!")
			if !ok || !strings.HasPrefix(ch, b.inbox()) {
				continue
			}
			b.localMu.Lock()
			g, ok := b.local[local]
			b.localMu.Unlock()
			if ok && !seen[g] {
				seen[g] = true
				b.handle(g, ev)
			}
		}
	}
}

// readSubscriptions reads one subscription connection (pubsub) until the
// bridge closes. go-redis reconnects and subscribes again by itself on the
// next read after a failure. A read waits at most PingInterval + Timeout:
// pingSubscriptions makes the connection answer within that, so a read
// that times out means the connection is dead though open (its peer gone
// without a FIN); the failed read makes go-redis drop it and dial again.
func (b *bridge) readSubscriptions(ps *goredis.PubSub) {
	delay := 100 * time.Millisecond
	prefix := b.opt.Prefix + "__group__"
	for b.ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(b.ctx, b.opt.PingInterval+b.opt.Timeout)
		msg, err := ps.Receive(rctx)
		cancel()
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				b.silent.Add(1)
				err = fmt.Errorf("the pub/sub connection answered nothing for %v (not even a ping); reconnecting: %w", b.opt.PingInterval+b.opt.Timeout, err)
				b.log.Warn("channels_redis bridge: " + err.Error())
			}
			b.fail(err)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Message:
			g, ok := strings.CutPrefix(m.Channel, prefix)
			if !ok {
				continue
			}
			ev, _, err := b.codec.decode([]byte(m.Payload), false)
			if err != nil {
				b.undecodable.Add(1)
				b.log.Warn("channels_redis bridge: cannot read a message from the Django side (check serializer and symmetric keys)", "err", err)
				continue
			}
			b.handle(g, ev)
		case *goredis.Pong:
			b.healthy()
			b.wmu.Lock()
			if ch, ok := b.waiters[m.Payload]; ok {
				close(ch)
				delete(b.waiters, m.Payload)
			}
			b.wmu.Unlock()
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.healthy()
			}
		}
	}
}

// pingSubscriptions pings one subscription connection (pubsub) every
// PingInterval until the bridge closes, so that readSubscriptions hears
// from a live connection at least that often.
func (b *bridge) pingSubscriptions(ps *goredis.PubSub) {
	t := time.NewTicker(b.opt.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.opt.Timeout)
		if err := ps.Ping(ctx, "chatd-alive"); err != nil && b.ctx.Err() == nil {
			b.log.Debug("channels_redis bridge: ping on the pub/sub connection", "err", err)
		}
		cancel()
	}
}

// handle passes a Django event of group g to Inbound, once per deployment.
func (b *bridge) handle(g string, ev Event) {
	room, ok := b.held.room(g)
	if !ok {
		return // left meanwhile
	}
	if origin, _ := ev.String(OriginKey); origin == b.opt.Deployment {
		return // chatd's own message: its processes have it already
	}
	if _, ok := ev.String("message"); !ok || !isChatType(ev.Type()) {
		b.ignored.Add(1)
		b.log.Debug("channels_redis bridge: ignoring a Django event that is not a chat message", "group", g, "type", ev.Type())
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opt.Timeout)
	held, err := leaseScript.Run(ctx, b.clients[0], []string{b.leaseKey(g)}, b.id, leaseTTL.Milliseconds()).Int()
	cancel()
	if err != nil {
		// Without the lease nobody can tell which process takes the event;
		// dropping it here is at most once, like the layer itself.
		b.fail(err)
		b.log.Warn("channels_redis bridge: cannot take the room's lease; dropping a Django event", "group", g, "err", err)
		return
	}
	if held != 1 {
		b.skipped.Add(1)
		return
	}
	b.received.Add(1)
	if b.opt.Inbound != nil {
		b.opt.Inbound(b.ctx, room, ev)
	}
}

// close leaves every group and stops the bridge's goroutines.
func (b *bridge) close() {
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.Timeout)
	for _, g := range b.held.list() {
		b.leave(ctx, g)
	}
	cancel()
	b.cancel()
	for _, ps := range b.pss {
		_ = ps.Close()
	}
	// Closing the clients ends a BZPOPMIN in progress at once.
	b.closeClients()
	b.wg.Wait()
}

func (b *bridge) closeClients() {
	for _, c := range b.clients {
		_ = c.Close()
	}
}
