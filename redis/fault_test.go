package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chat/redis"
)

// failWait bounds every wait in the fault tests. It is a failure timeout,
// never a measurement: recovery normally takes well under a second.
const failWait = 20 * time.Second

// TestRedisRestart kills the layer's Redis (SIGKILL) in the middle of
// traffic and starts it again on the same port.
func TestRedisRestart(t *testing.T) {
	srv := startRedis(t)
	testOutage(t, srv, "restart",
		func() { srv.kill() },
		func() { srv.start() })
}

// TestRedisPause freezes the layer's Redis (SIGSTOP) in the middle of
// traffic, so its sockets stay open but nothing answers, then resumes it
// (SIGCONT). Only the layer's health checks and timeouts can notice.
func TestRedisPause(t *testing.T) {
	srv := startRedis(t)
	testOutage(t, srv, "pause",
		func() { srv.signal(syscall.SIGSTOP) },
		func() { srv.signal(syscall.SIGCONT) })
}

// recorder keeps what one subscriber process received, per group.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]int // group -> message numbers in arrival order; guarded by mu
}

func newRecorder() *recorder { return &recorder{msgs: make(map[string][]int)} }

func (r *recorder) recv(group string, msg []byte) {
	n, err := strconv.Atoi(string(msg))
	if err != nil {
		n = -1
	}
	r.mu.Lock()
	r.msgs[group] = append(r.msgs[group], n)
	r.mu.Unlock()
}

func (r *recorder) get(group string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.msgs[group]...)
}

// last returns the highest message number received in group, or -1.
func (r *recorder) last(group string) int {
	got := r.get(group)
	if len(got) == 0 {
		return -1
	}
	return got[len(got)-1]
}

// eventually polls cond until it holds, failing the test after failWait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still waiting for %s", failWait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testOutage runs one publisher and two subscriber processes on srv,
// publishing continuously to two groups (one held by both subscribers, one by
// the first only), takes Redis away with stop and brings it back with start,
// and checks the layer's promises:
//
//   - while Redis is away Publish fails with ErrUnavailable and Err is non-nil;
//   - nothing crashes, and each layer logs the loss and the recovery once;
//   - once Redis is back, Err returns to nil and Redis again lists the
//     subscriptions (the layers resubscribed by themselves);
//   - delivery resumes, every message published after recovery arrives, and
//     no message is ever duplicated or reordered.
func testOutage(t *testing.T, srv *redisServer, name string, stop, start func()) {
	const (
		g1 = "room.both"  // subscribed by sub1 and sub2
		g2 = "room.first" // subscribed by sub1 only
	)
	opt := func(log string) redis.Options {
		lg, _ := newLogCounter(t, log)
		return redis.Options{
			URL: srv.url(), Logger: lg,
			// Intervals shorter than the defaults keep the test quick, but
			// not so short that a busy machine's scheduling delays look
			// like a frozen Redis: the watchdog's window is 3 intervals.
			Timeout: 2 * time.Second, PingInterval: time.Second, MaxBackoff: time.Second,
		}
	}
	var logs []*logCounter
	newL := func(name string, recv func(string, []byte)) *redis.Layer {
		lg, lc := newLogCounter(t, name)
		o := opt(name)
		o.Logger = lg
		logs = append(logs, lc)
		return newLayer(t, o, recv)
	}
	rec1, rec2 := newRecorder(), newRecorder()
	sub1 := newL("sub1", rec1.recv)
	sub2 := newL("sub2", rec2.recv)
	pub := newL("pub", func(string, []byte) {})
	layers := []*redis.Layer{sub1, sub2, pub}
	ctx := context.Background()
	for _, s := range []struct {
		l *redis.Layer
		g string
	}{{sub1, g1}, {sub1, g2}, {sub2, g1}} {
		if err := s.l.Subscribe(ctx, s.g); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}

	// The publisher: message i goes to g1 then g2, every few milliseconds,
	// until told to stop. ok[i] records whether both publishes succeeded.
	var (
		mu      sync.Mutex
		next    int              // guarded by mu: the next message number
		ok      = map[int]bool{} // guarded by mu
		pubErrs []error          // guarded by mu: errors seen, in order
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			msg := []byte(strconv.Itoa(i))
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err1 := pub.Publish(pctx, g1, msg)
			err2 := pub.Publish(pctx, g2, msg)
			cancel()
			mu.Lock()
			next = i + 1
			ok[i] = err1 == nil && err2 == nil
			for _, err := range []error{err1, err2} {
				if err != nil {
					pubErrs = append(pubErrs, err)
				}
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	})
	defer func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		wg.Wait()
	}()
	errCount := func() int { mu.Lock(); defer mu.Unlock(); return len(pubErrs) }

	eventually(t, "traffic before the outage", func() bool {
		return rec1.last(g1) >= 50 && rec1.last(g2) >= 50 && rec2.last(g1) >= 50
	})

	t.Logf("%s: taking redis away", name)
	stop()
	eventually(t, "a failed Publish", func() bool { return errCount() > 0 })
	for i, l := range layers {
		eventually(t, fmt.Sprintf("layer %d to report the outage", i), func() bool { return l.Err() != nil })
		if err := l.Err(); !errors.Is(err, redis.ErrUnavailable) {
			t.Errorf("layer %d: Err() = %v, want an error wrapping ErrUnavailable", i, err)
		}
	}
	mu.Lock()
	firstErr := pubErrs[0]
	mu.Unlock()
	if !errors.Is(firstErr, redis.ErrUnavailable) {
		t.Errorf("Publish error %v does not wrap ErrUnavailable", firstErr)
	}
	t.Logf("%s: Publish error: %v", name, firstErr)
	t.Logf("%s: Err: %v", name, pub.Err())
	// Let the publisher run into the outage for a while: failed publishes
	// must neither crash nor log.
	before := errCount()
	eventually(t, "more failed publishes", func() bool { return errCount() >= before+20 })
	// Keep Redis away until every layer has failed to reconnect a few
	// times, so the checks below cover repeated failed attempts.
	for i, lc := range logs {
		eventually(t, fmt.Sprintf("layer %d to retry", i), func() bool { return lc.count("redis layer reconnecting") >= 4 })
	}

	t.Logf("%s: bringing redis back", name)
	start()
	for i, l := range layers {
		eventually(t, fmt.Sprintf("layer %d to recover", i), func() bool { return l.Err() == nil })
	}
	// Redis lists the subscriptions again: the layers resubscribed.
	eventually(t, "Redis to list both subscribers of g1 and one of g2", func() bool {
		n := numsub(t, srv.addr(), redis.DefaultPrefix+g1, redis.DefaultPrefix+g2)
		return n[0] == 2 && n[1] == 1
	})
	mu.Lock()
	resume := next // every message from here on was published after recovery
	mu.Unlock()
	// A connection lost again after this point (the layers log it) may
	// lose messages, as at-most-once allows; the checks below expect none
	// lost after recovery unless a layer reported such a second loss.
	lostBefore := make([]int, len(logs))
	for i, lc := range logs {
		lostBefore[i] = lc.count("redis layer lost its connection")
	}
	lostAgain := func(i int) bool { return logs[i].count("redis layer lost its connection") > lostBefore[i] }
	eventually(t, "delivery to resume", func() bool {
		return rec1.last(g1) >= resume+50 && rec1.last(g2) >= resume+50 && rec2.last(g1) >= resume+50
	})
	close(quit)
	wg.Wait()

	// Settle: a final message on the publisher's path arrives after every
	// earlier one.
	final := next + 1
	for _, g := range []string{g1, g2} {
		if err := pub.Publish(ctx, g, []byte(strconv.Itoa(final))); err != nil {
			t.Fatalf("final Publish: %v", err)
		}
	}
	eventually(t, "the final message", func() bool {
		return rec1.last(g1) == final && rec1.last(g2) == final && rec2.last(g1) == final
	})

	mu.Lock()
	defer mu.Unlock()
	for _, c := range []struct {
		who   string
		got   []int
		layer int // index in logs of the subscriber
	}{{"sub1 " + g1, rec1.get(g1), 0}, {"sub1 " + g2, rec1.get(g2), 0}, {"sub2 " + g1, rec2.get(g1), 1}} {
		seen := make(map[int]bool, len(c.got))
		prev := -1
		for _, n := range c.got {
			if n <= prev {
				t.Fatalf("%s: message %d arrived after %d (duplicate or reordered)", c.who, n, prev)
			}
			prev = n
			seen[n] = true
		}
		lost := 0
		for i := resume; i < next; i++ {
			if !ok[i] && !lostAgain(2) {
				t.Errorf("message %d, published after every layer reported recovery, failed", i)
			}
			if ok[i] && !seen[i] && !lostAgain(c.layer) && !lostAgain(2) {
				t.Errorf("%s: message %d, published after recovery, never arrived", c.who, i)
			}
		}
		for i := 0; i < next; i++ {
			if ok[i] && !seen[i] {
				lost++
			}
		}
		t.Logf("%s: received %d messages; %d acknowledged publishes were lost around the outage (at most once)", c.who, len(c.got), lost)
	}
	t.Logf("%s: %d failed publishes during the outage", name, len(pubErrs))

	// Each state change was logged once, however many publishes failed.
	for i, lc := range logs {
		if n := lc.count("redis layer lost its connection"); n != 1 {
			t.Errorf("layer %d logged the loss %d times, want once", i, n)
		}
		if n := lc.count("redis layer reconnected"); n != 1 {
			t.Errorf("layer %d logged the recovery %d times, want once", i, n)
		}
	}
}

// TestSubscriptionChangesWhileDown checks subscription changes made while
// Redis is away: a Subscribe that fails for lack of Redis still holds the
// group, which is subscribed when Redis returns; a group left while down is
// not subscribed again; and the groups held before are.
func TestSubscriptionChangesWhileDown(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	opt := redis.Options{URL: srv.url(), Logger: testLogger(t),
		Timeout: 500 * time.Millisecond, PingInterval: 200 * time.Millisecond, MaxBackoff: time.Second}
	rec := newRecorder()
	l := newLayer(t, opt, rec.recv)
	for _, g := range []string{"left", "kept"} {
		if err := l.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	srv.kill()
	eventually(t, "the layer to report the outage", func() bool { return l.Err() != nil })
	err := l.Subscribe(ctx, "joined")
	if !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Subscribe while down: %v, want ErrUnavailable", err)
	}
	t.Logf("Subscribe while down: %v", err)
	if err := l.Unsubscribe(ctx, "left"); err != nil {
		t.Fatalf("Unsubscribe while down: %v", err)
	}

	srv.start()
	eventually(t, "the layer to recover", func() bool { return l.Err() == nil })
	if n := numsub(t, srv.addr(), redis.DefaultPrefix+"kept", redis.DefaultPrefix+"left", redis.DefaultPrefix+"joined"); n[0] != 1 || n[1] != 0 || n[2] != 1 {
		t.Fatalf("after recovery Redis lists %v subscribers of [kept left joined], want [1 0 1]", n)
	}
	pub := newLayer(t, redis.Options{URL: srv.url()}, func(string, []byte) {})
	for _, g := range []string{"left", "kept", "joined"} {
		if err := pub.Publish(ctx, g, []byte("7")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the messages to the held groups", func() bool { return rec.last("kept") == 7 && rec.last("joined") == 7 })
	if got := rec.get("left"); len(got) != 0 {
		t.Errorf("group left while down received %v", got)
	}
	// Subscribing again is quick and harmless now.
	if err := l.Subscribe(ctx, "joined"); err != nil {
		t.Errorf("Subscribe after recovery: %v", err)
	}
}

// TestSubscribeTimesOut checks a Subscribe whose context ends before Redis
// confirms: Redis is frozen (SIGSTOP) while the layer still believes it
// healthy, so SUBSCRIBE is sent but not confirmed. Subscribe returns the
// context's error, the group stays held (Redis lists it once it resumes),
// and Unsubscribe gives it up.
func TestSubscribeTimesOut(t *testing.T) {
	srv := startRedis(t)
	// A long ping interval keeps the watchdog out of this test.
	l := newLayer(t, redis.Options{URL: srv.url(), Logger: testLogger(t), PingInterval: time.Minute}, func(string, []byte) {})
	bg := context.Background()
	if err := l.Subscribe(bg, "held"); err != nil {
		t.Fatal(err)
	}
	srv.signal(syscall.SIGSTOP)
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	err := l.Subscribe(ctx, "slow")
	cancel()
	srv.signal(syscall.SIGCONT)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe to a frozen Redis: %v, want context.DeadlineExceeded", err)
	}
	t.Logf("Subscribe to a frozen Redis: %v", err)
	// A later Subscribe's confirmation comes after everything sent before it.
	if err := l.Subscribe(bg, "later"); err != nil {
		t.Fatal(err)
	}
	if n := numsub(t, srv.addr(), redis.DefaultPrefix+"held", redis.DefaultPrefix+"slow", redis.DefaultPrefix+"later"); n[0] != 1 || n[1] != 1 || n[2] != 1 {
		t.Fatalf("Redis lists %v subscribers of [held slow later], want [1 1 1]", n)
	}
	if err := l.Unsubscribe(bg, "slow"); err != nil {
		t.Fatal(err)
	}
	if err := l.Subscribe(bg, "later"); err != nil { // a barrier after the UNSUBSCRIBE
		t.Fatal(err)
	}
	if n := numsub(t, srv.addr(), redis.DefaultPrefix+"slow"); n[0] != 0 {
		t.Fatalf("after Unsubscribe Redis lists %d subscribers of slow, want 0", n[0])
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err() = %v after Redis resumed", err)
	}
}
