// Package testserver builds the real chatd binary once per test process and
// runs it as a separate process, for end-to-end tests that need several
// servers (a shared Redis layer) or a server outside the test's own process
// (load tests, signal handling).
package testserver

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a chatd binary built from this checkout.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chatd-testserver-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chatd")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/chatd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/chatd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Server is a running chatd process.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	Cmd  *exec.Cmd

	// DataDir is the server's DATA_DIR (where its SQLite database lives).
	DataDir string

	args []string // as given to Start
	env  []string // as given to Start

	mu     sync.Mutex
	stderr bytes.Buffer // guarded by mu
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// Start runs chatd with args (the listen address defaults to 127.0.0.1:0)
// and env (KEY=VALUE, added to a minimal environment), waits until it
// listens, and stops it when the test ends.
func Start(t testing.TB, args []string, env ...string) *Server {
	t.Helper()
	return StartWrapped(t, nil, args, env...)
}

// StartWrapped is Start with chatd run under a wrapper command, such as
// prlimit --nofile=256:256 --, which gets chatd's path and args appended.
func StartWrapped(t testing.TB, wrapper, args []string, env ...string) *Server {
	t.Helper()
	bin := Binary(t)
	given, givenEnv := args, env
	dataDir := ""
	for _, kv := range env {
		if d, ok := strings.CutPrefix(kv, "DATA_DIR="); ok {
			dataDir = d // the last one wins, as in the process's environment
		}
	}
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	hasAddr := false
	for _, a := range args {
		if a == "-addr" || strings.HasPrefix(a, "-addr=") || a == "--addr" {
			hasAddr = true
		}
	}
	if !hasAddr {
		args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	}
	argv := append(append(append([]string{}, wrapper...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATA_DIR=" + dataDir}, env...)
	s := &Server{Cmd: cmd, DataDir: dataDir, args: given, env: givenEnv, exited: make(chan struct{})}
	cmd.Stderr = lockedWriter{s}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "chatd listening on http://"); ok {
				select {
				case addr <- strings.TrimSuffix(rest, "/chat/"):
				default:
				}
			}
		}
	}()
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.Stop(t) })
	select {
	case a := <-addr:
		s.Addr, s.URL = a, "http://"+a
	case <-s.exited:
		t.Fatalf("chatd exited before listening: %v\n%s", s.err, s.Stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("chatd did not listen within 30s\n%s", s.Stderr())
	}
	return s
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

// Stderr returns what the server logged so far.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Signal sends sig to the server.
func (s *Server) Signal(sig os.Signal) error { return s.Cmd.Process.Signal(sig) }

// Wait waits (bounded) for the process to exit and returns its exit error.
func (s *Server) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		t.Fatalf("chatd did not exit within %v", timeout)
		return nil
	}
}

// Stop sends SIGTERM and waits for the exit, killing after 15 s. On a
// failed test the server's log is printed.
func (s *Server) Stop(t testing.TB) {
	select {
	case <-s.exited:
	default:
		_ = s.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.Cmd.Process.Kill()
			<-s.exited
		}
	}
	if t.Failed() {
		t.Logf("chatd %s log:\n%s", s.Addr, s.Stderr())
	}
}

// StartAgain starts a new chatd process with s's arguments (and then
// extra, which override them) and environment, on s's address and with its
// DATA_DIR, so that clients of s reconnect to where they were and find the
// database s left. It stops s first (SIGTERM, as Stop) if s is still
// running.
func (s *Server) StartAgain(t testing.TB, extra ...string) *Server {
	t.Helper()
	s.Stop(t)
	args := append(slices.Clone(s.args), extra...)
	args = append(args, "-addr", s.Addr) // a later flag wins
	env := append(slices.Clone(s.env), "DATA_DIR="+s.DataDir)
	return Start(t, args, env...)
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.Cmd.Process.Pid }
