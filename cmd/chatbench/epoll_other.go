//go:build !linux

package main

import "errors"

// epollLoop is Linux only; elsewhere chatbench reads with gws.
type epollLoop struct{}

const epollAvailable = false

func newEpollLoop(clients int, bufSize int) (*epollLoop, error) {
	return nil, errors.New("chatbench: -client epoll needs Linux")
}
func (l *epollLoop) add(rc *rawConn) error { return errors.New("chatbench: no epoll") }
func (l *epollLoop) shutdown()             {}
