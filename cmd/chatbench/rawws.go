//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rawConn is chatbench's own minimal WebSocket client connection, used with
// -client epoll (the default on Linux). Its socket bypasses Go's netpoller:
// an epoll loop (epoll_linux.go) reads it with one recv per readiness event
// and parses the frames from a buffer shared by all connections of the
// loop; writes are blocking send calls from the writing goroutine.
//
// Why not gws for reading: with a goroutine per connection, every frame
// that arrives alone (the common case with many rooms) costs a netpoller
// wake-up, a goroutine switch, a read that returns data and a second read
// that returns EAGAIN; that was about half of chatbench's CPU, and
// chatbench shares the cores with the server it measures.
type rawConn struct {
	c  *client
	fd int // a blocking socket, never seen by Go's netpoller

	wmu    sync.Mutex // serialises writes (sender, pongs, close) and closing
	wbuf   []byte     // guarded by wmu
	closed bool       // guarded by wmu: fd is closed (and may be reused)

	// Read loop only.
	rest   []byte // bytes of an incomplete frame
	frag   []byte // a fragmented message being assembled
	inFrag bool
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// writeTimeout bounds a blocked write (a server that stops reading), so
// that senders and the run always end.
const writeTimeout = 10 * time.Second

// dialRaw connects and performs the opening handshake. The socket is made
// with syscalls and stays blocking, outside Go's netpoller: the epoll loop
// reads it with recv(MSG_DONTWAIT), writes block (bounded by SO_SNDTIMEO).
// Had it been a net.Conn, Go's own poller would also wake up for every
// frame that arrives, for nothing. The response header is read here, and
// what follows it is returned as the first bytes of the stream.
func dialRaw(ctx context.Context, rawURL string, header http.Header, timeout time.Duration) (*rawConn, []byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "ws" {
		return nil, nil, fmt.Errorf("chatbench: -client epoll speaks ws:// only (use -client gws for %s://)", u.Scheme)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil || len(ips) == 0 {
		return nil, nil, fmt.Errorf("chatbench: resolve %s: %v", u.Hostname(), err)
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		return nil, nil, fmt.Errorf("chatbench: bad port %q", port)
	}
	var (
		sa     syscall.Sockaddr
		family = syscall.AF_INET
	)
	if ip4 := ips[0].IP.To4(); ip4 != nil {
		sa4 := &syscall.SockaddrInet4{Port: pn}
		copy(sa4.Addr[:], ip4)
		sa = sa4
	} else {
		sa6 := &syscall.SockaddrInet6{Port: pn}
		copy(sa6.Addr[:], ips[0].IP.To16())
		sa, family = sa6, syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socket", err)
	}
	rc := &rawConn{fd: fd}
	fail := func(err error) (*rawConn, []byte, error) {
		rc.closeFD()
		return nil, nil, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv) // also bounds connect
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return fail(os.NewSyscallError("connect", err))
	}

	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(k[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(k[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", u.RequestURI(), u.Host, key)
	for name, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", name, v)
		}
	}
	req.WriteString("\r\n")
	if err := writeAll(fd, []byte(req.String())); err != nil {
		return fail(fmt.Errorf("chatbench: handshake: %w", err))
	}

	buf := make([]byte, 0, 1024)
	end := -1
	for end < 0 {
		if len(buf) == cap(buf) {
			if cap(buf) >= 16<<10 {
				return fail(errors.New("chatbench: handshake response header too large"))
			}
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("chatbench: handshake: %w", os.NewSyscallError("read", err)))
		}
		if n <= 0 {
			return fail(fmt.Errorf("chatbench: handshake: %w", io.ErrUnexpectedEOF))
		}
		buf = buf[:len(buf)+n]
		end = bytes.Index(buf, []byte("\r\n\r\n"))
	}
	head := string(buf[:end])
	status, fields, _ := strings.Cut(head, "\r\n")
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		return fail(fmt.Errorf("chatbench: handshake: %s", status))
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	want := base64.StdEncoding.EncodeToString(sum[:])
	ok := false
	for _, line := range strings.Split(fields, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Sec-WebSocket-Accept") && strings.TrimSpace(value) == want {
			ok = true
		}
	}
	if !ok {
		return fail(errors.New("chatbench: handshake: bad Sec-WebSocket-Accept"))
	}
	wt := syscall.NsecToTimeval(writeTimeout.Nanoseconds())
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &wt)
	return rc, append([]byte(nil), buf[end+4:]...), nil
}

// writeAll writes p to the blocking socket fd.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := syscall.Write(fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err == syscall.EAGAIN {
				return fmt.Errorf("chatbench: write blocked for %v (the server does not read)", writeTimeout)
			}
			return os.NewSyscallError("write", err)
		}
		p = p[n:]
	}
	return nil
}

// Cut shuts the socket down without closing it: the epoll loop reads its
// end and finishes the connection (closing the descriptor there, so no
// read races with a reused one).
func (rc *rawConn) Cut() {
	rc.wmu.Lock()
	if !rc.closed {
		_ = syscall.Shutdown(rc.fd, syscall.SHUT_RDWR)
	}
	rc.wmu.Unlock()
}

// closeFD closes the socket once; writes after it fail.
func (rc *rawConn) closeFD() {
	rc.wmu.Lock()
	if !rc.closed {
		rc.closed = true
		_ = syscall.Close(rc.fd)
	}
	rc.wmu.Unlock()
}

var errClosed = errors.New("chatbench: connection closed")

// writeFrame writes one masked frame.
func (rc *rawConn) writeFrame(op byte, payload []byte) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	if rc.closed {
		return errClosed
	}
	b := rc.wbuf[:0]
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	rc.wbuf = b
	return writeAll(rc.fd, b)
}

// WriteText sends one text message.
func (rc *rawConn) WriteText(p []byte) error { return rc.writeFrame(0x1, p) }

// CloseNormal starts the closing handshake (1000); the read loop finishes
// the connection when the server answers or the socket ends.
func (rc *rawConn) CloseNormal() { _ = rc.writeFrame(0x8, []byte{0x03, 0xe8}) }

// closeError is the close frame a server sent.
type closeError struct {
	code   uint16
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed by server: %d %s", e.code, e.reason) }

// maxFrame bounds a frame's length so that a corrupt header cannot make
// chatbench allocate without limit.
const maxFrame = 64 << 20

// parse handles every complete frame in p, received at now, and returns how
// many bytes it consumed. A non-nil error ends the connection (a close
// frame, a protocol error).
func (rc *rawConn) parse(p []byte, now int64) (int, error) {
	consumed := 0
	for len(p) >= 2 {
		b0, b1 := p[0], p[1]
		hl := 2
		n := uint64(b1 & 0x7f)
		switch n {
		case 126:
			if len(p) < 4 {
				return consumed, nil
			}
			n, hl = uint64(binary.BigEndian.Uint16(p[2:])), 4
		case 127:
			if len(p) < 10 {
				return consumed, nil
			}
			n, hl = binary.BigEndian.Uint64(p[2:]), 10
		}
		if n > maxFrame {
			return consumed, fmt.Errorf("chatbench: frame of %d bytes", n)
		}
		masked := b1&0x80 != 0
		if masked {
			hl += 4
		}
		if uint64(len(p)) < uint64(hl)+n {
			return consumed, nil
		}
		payload := p[hl : hl+int(n)]
		if masked {
			key := p[hl-4 : hl]
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		fin := b0&0x80 != 0
		switch op := b0 & 0x0f; op {
		case 0x1, 0x2:
			if fin {
				rc.c.handle(payload, now)
			} else {
				rc.frag, rc.inFrag = append(rc.frag[:0], payload...), true
			}
		case 0x0:
			if !rc.inFrag {
				return consumed, errors.New("chatbench: unexpected continuation frame")
			}
			rc.frag = append(rc.frag, payload...)
			if fin {
				rc.c.handle(rc.frag, now)
				rc.inFrag = false
			}
		case 0x8:
			e := &closeError{code: 1005}
			if len(payload) >= 2 {
				e.code = binary.BigEndian.Uint16(payload)
				e.reason = string(payload[2:])
			}
			if !rc.c.quit.Load() { // answer a close we did not start
				_ = rc.writeFrame(0x8, payload[:min(len(payload), 2)])
			}
			return consumed + hl + int(n), e
		case 0x9:
			_ = rc.writeFrame(0xA, payload)
		case 0xA:
		default:
			return consumed, fmt.Errorf("chatbench: unknown opcode %d", op)
		}
		consumed += hl + int(n)
		p = p[hl+int(n):]
	}
	return consumed, nil
}
