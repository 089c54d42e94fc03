// Package redistest runs private redis-server processes for tests that stop,
// pause, restart or reconfigure Redis. Each one belongs to one test, on a
// port of its own; the machine's shared Redis is never touched.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// Server is a redis-server process owned by one test.
type Server struct {
	t    testing.TB
	Port string
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts a private redis-server without persistence, or skips the
// test if the binary is not installed. It is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed; the fault tests need it")
	}
	s := &Server{t: t, Port: FreePort(t), dir: t.TempDir()}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// URL returns the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + s.Port }

// Restart starts redis-server on s.Port (after Kill, or the first time)
// and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server",
		"--port", s.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", "")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second) // a failure bound
	for !Ping(s.Port) {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %s did not answer PING within 20s", s.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL (after SIGCONT, in case it is paused) and waits for
// the process to exit.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Signal sends sig to the server (SIGSTOP pauses it, SIGCONT resumes).
func (s *Server) Signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Do sends one command to the server and returns its reply's first line
// (e.g. "+OK", ":2").
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	rd, done := s.send(args...)
	defer done()
	line, err := rd.ReadString('\n')
	if err != nil {
		s.t.Fatalf("redis %s: %v", strings.Join(args, " "), err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		s.t.Fatalf("redis %s: %s", strings.Join(args, " "), line)
	}
	return line
}

// send sends one command on a new connection and returns a reader of the
// reply and a function that closes the connection.
func (s *Server) send(args ...string) (*bufio.Reader, func()) {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "*" + strconv.Itoa(len(args)) + "\r\n"
	for _, a := range args {
		req += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
	}
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		s.t.Fatal(err)
	}
	return bufio.NewReader(c), func() { c.Close() }
}

// Ping reports whether a Redis server on 127.0.0.1:port answers PING.
func Ping(port string) bool {
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

// String names the server in test output.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr()) }

// PubsubClients returns how many pub/sub connections the server has
// (CLIENT LIST TYPE pubsub).
func (s *Server) PubsubClients() int {
	s.t.Helper()
	rd, done := s.send("CLIENT", "LIST", "TYPE", "pubsub")
	defer done()
	head, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		s.t.Fatalf("CLIENT LIST: %q %v", head, err)
	}
	size, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		s.t.Fatalf("CLIENT LIST: %q", head)
	}
	body := make([]byte, size+2)
	if _, err := io.ReadFull(rd, body); err != nil {
		s.t.Fatal(err)
	}
	return strings.Count(string(body[:size]), "\n")
}
