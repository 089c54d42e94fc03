//go:build linux

package main

import (
	"errors"
	"io"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// epollLoop reads the connections registered with it: one goroutine waits
// in epoll_wait (level-triggered) and, for each readable socket, does one
// read(2) into a buffer shared by all its connections, then parses and
// accounts for every complete frame in it. Bytes of an incomplete frame are
// kept per connection (rawConn.rest), usually nothing, so an idle
// connection costs only its socket.
type epollLoop struct {
	epfd  int
	slots []atomic.Pointer[rawConn] // by client id; nil once finished
	buf   []byte                    // loop goroutine only
	stop  atomic.Bool
	done  chan struct{}
}

const epollAvailable = true

func newEpollLoop(clients int, bufSize int) (*epollLoop, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &epollLoop{epfd: fd, slots: make([]atomic.Pointer[rawConn], clients),
		buf: make([]byte, max(bufSize, 4096)), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// add registers rc. Everything rc.c's read side holds must be written
// before: the slot's atomic store publishes it to the loop.
func (l *epollLoop) add(rc *rawConn) error {
	id := rc.c.id
	l.slots[id].Store(rc)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(rc.fd), Pad: int32(id)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, rc.fd, &ev); err != nil {
		l.slots[id].Store(nil)
		return err
	}
	return nil
}

func (l *epollLoop) run() {
	defer close(l.done)
	events := make([]syscall.EpollEvent, 256)
	for !l.stop.Load() {
		// The timeout only bounds how long a stop request waits.
		n, err := syscall.EpollWait(l.epfd, events, 20)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for i := range n {
			if rc := l.slots[events[i].Pad].Load(); rc != nil {
				l.readable(rc)
			}
		}
	}
}

// readable reads once from rc and handles what arrived.
func (l *epollLoop) readable(rc *rawConn) {
	var (
		data []byte
		m    int
		err  error
		slow = len(rc.rest) > len(l.buf)/2 // a frame too large for the shared buffer
	)
	if slow {
		if cap(rc.rest)-len(rc.rest) < 64<<10 {
			rc.rest = append(rc.rest, make([]byte, max(len(rc.rest), 64<<10))...)[:len(rc.rest)]
		}
		m, err = recv(rc.fd, rc.rest[len(rc.rest):cap(rc.rest)])
		if m > 0 {
			data = rc.rest[:len(rc.rest)+m]
		}
	} else {
		n0 := copy(l.buf, rc.rest)
		m, err = recv(rc.fd, l.buf[n0:])
		if m > 0 {
			data = l.buf[:n0+m]
		}
	}
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return
		}
		l.finish(rc, err)
		return
	}
	if m == 0 {
		l.finish(rc, io.EOF)
		return
	}
	k, perr := rc.parse(data, time.Now().UnixNano())
	left := data[k:]
	if slow {
		rc.rest = rc.rest[:copy(rc.rest[:cap(rc.rest)], left)]
	} else {
		rc.rest = append(rc.rest[:0], left...)
	}
	if perr != nil {
		l.finish(rc, perr)
	}
}

// recv reads without blocking from the blocking socket fd.
// (syscall.Recvfrom would allocate a sockaddr per call.)
func recv(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// finish unregisters and closes rc and marks its client done.
func (l *epollLoop) finish(rc *rawConn, err error) {
	l.slots[rc.c.id].Store(nil)
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, rc.fd, nil)
	rc.c.setCloseErr(err)
	rc.closeFD()
	rc.c.finish()
}

// shutdown stops the loop and waits for it; the caller then closes what is
// left. The epoll descriptor is closed.
func (l *epollLoop) shutdown() {
	if l.stop.Swap(true) {
		return
	}
	<-l.done
	_ = syscall.Close(l.epfd)
}
