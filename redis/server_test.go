package redis_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string { return redistest.FreePort(t) }

// redisServer is a redis-server process that belongs to one test, on a port
// of its own, so the test may kill, pause and restart it. The machine's
// shared Redis is never touched.
type redisServer struct{ *redistest.Server }

// startRedis starts a private redis-server without persistence, or skips the
// test if the binary is not installed.
func startRedis(t *testing.T) *redisServer { return &redisServer{redistest.Start(t)} }

func (s *redisServer) url() string               { return s.URL() }
func (s *redisServer) addr() string              { return s.Addr() }
func (s *redisServer) start()                    { s.Restart() }
func (s *redisServer) kill()                     { s.Kill() }
func (s *redisServer) signal(sig syscall.Signal) { s.Signal(sig) }

// numsub returns the number of subscribers of each channel, as the Redis
// server at addr (host:port) sees it.
func numsub(t *testing.T, addr string, channels ...string) []int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "*" + strconv.Itoa(2+len(channels)) + "\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n"
	for _, ch := range channels {
		req += "$" + strconv.Itoa(len(ch)) + "\r\n" + ch + "\r\n"
	}
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	// The reply is an array of channel, count pairs.
	rd := bufio.NewReader(c)
	line := func() string {
		s, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		return s[:len(s)-2]
	}
	if h := line(); h != "*"+strconv.Itoa(2*len(channels)) {
		t.Fatalf("PUBSUB NUMSUB: unexpected reply %q", h)
	}
	var counts []int
	for range channels {
		line() // $len
		line() // channel
		n, err := strconv.Atoi(line()[1:])
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	return counts
}

// logCounter is a slog.Handler that counts records by message and passes
// them on to the test log, so a test can check what was logged and how often.
type logCounter struct {
	next   slog.Handler
	mu     *sync.Mutex
	counts map[string]int // guarded by mu
}

func newLogCounter(t *testing.T, name string) (*slog.Logger, *logCounter) {
	h := &logCounter{
		next:   testLogger(t).With("layer", name).Handler(),
		mu:     new(sync.Mutex),
		counts: make(map[string]int),
	}
	return slog.New(h), h
}

func (h *logCounter) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *logCounter) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.counts[r.Message]++
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *logCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCounter{next: h.next.WithAttrs(as), mu: h.mu, counts: h.counts}
}

func (h *logCounter) WithGroup(name string) slog.Handler {
	return &logCounter{next: h.next.WithGroup(name), mu: h.mu, counts: h.counts}
}

// count returns how many records had a message starting with prefix.
func (h *logCounter) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for msg, c := range h.counts {
		if strings.HasPrefix(msg, prefix) {
			n += c
		}
	}
	return n
}
