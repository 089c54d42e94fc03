//go:build !linux

package main

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// The epoll client is Linux only; elsewhere chatbench reads with gws.

const epollAvailable = false

var errNoEpoll = errors.New("chatbench: -client epoll needs Linux")

type epollLoop struct{}

func newEpollLoop(clients int, bufSize int) (*epollLoop, error) { return nil, errNoEpoll }
func (l *epollLoop) add(rc *rawConn) error                      { return errNoEpoll }
func (l *epollLoop) shutdown()                                  {}

type rawConn struct {
	c    *client
	rest []byte
}

func dialRaw(ctx context.Context, rawURL string, header http.Header, timeout time.Duration) (*rawConn, []byte, error) {
	return nil, nil, errNoEpoll
}
func (rc *rawConn) parse(p []byte, now int64) (int, error) { return 0, errNoEpoll }
func (rc *rawConn) WriteText(p []byte) error               { return errNoEpoll }
func (rc *rawConn) CloseNormal()                           {}
func (rc *rawConn) closeFD()                               {}
func (rc *rawConn) Cut()                                   {}
