package redis_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// redisServer is a redis-server process that belongs to one test, on a port
// of its own, so the test may kill, pause and restart it. The machine's
// shared Redis is never touched.
type redisServer struct {
	t    *testing.T
	port string
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// startRedis starts a private redis-server without persistence, or skips the
// test if the binary is not installed.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed; the fault tests need it")
	}
	s := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) url() string { return "redis://" + s.addr() + "/0" }

func (s *redisServer) addr() string { return "127.0.0.1:" + s.port }

// start runs redis-server on s.port and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server",
		"--port", s.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", "")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ping(s.port) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %s did not answer PING within 20s", s.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL (after SIGCONT, in case it is paused) and waits for the
// process to exit.
func (s *redisServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func (s *redisServer) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// ping reports whether a Redis server on port answers PING.
func ping(port string) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

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
