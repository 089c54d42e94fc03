// Package memory is the in-process channel layer, chatd's default: groups
// live in one process, a publish is a direct call into the subscribed hubs.
//
// A Bus stands for the shared backend (what Redis is for the redis layer).
// Production code creates one Bus and one Layer; tests attach several Layers
// to one Bus to play several processes.
package memory

import (
	"context"
	"errors"
	"sync"

	chat "github.com/chatd/chat"
)

// ErrClosed is returned by a Layer after Close.
var ErrClosed = errors.New("memory: layer closed")

// Bus connects the Layers of one process (or of one test).
type Bus struct {
	mu sync.RWMutex
	// groups maps a group to its subscribed layers; guarded by mu.
	groups map[string][]*Layer
}

// NewBus returns an empty Bus.
func NewBus() *Bus {
	return &Bus{groups: make(map[string][]*Layer)}
}

// Layer is one process's attachment to a Bus. It implements chat.Layer.
type Layer struct {
	bus  *Bus
	recv chat.Receiver

	mu     sync.Mutex
	subs   map[string]bool // subscribed groups; guarded by mu
	closed bool            // guarded by mu
}

var _ chat.Layer = (*Layer)(nil)

// New returns a Layer on its own new Bus: the single-process default.
func New(recv chat.Receiver) *Layer {
	return NewBus().Attach(recv)
}

// Attach returns a new Layer on b that delivers to recv.
func (b *Bus) Attach(recv chat.Receiver) *Layer {
	return &Layer{bus: b, recv: recv, subs: make(map[string]bool)}
}

// Publish calls the receiver of every layer subscribed to group, in the
// caller's goroutine; receivers only queue, so this does not block. Ordering
// per publisher follows directly.
func (l *Layer) Publish(ctx context.Context, group string, msg []byte) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	l.bus.mu.RLock()
	defer l.bus.mu.RUnlock()
	for _, sub := range l.bus.groups[group] {
		sub.recv(group, msg)
	}
	return nil
}

// Subscribe adds l to group's subscribers; a second call is a no-op.
func (l *Layer) Subscribe(ctx context.Context, group string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.subs[group] {
		return nil
	}
	l.subs[group] = true
	l.bus.mu.Lock()
	l.bus.groups[group] = append(l.bus.groups[group], l)
	l.bus.mu.Unlock()
	return nil
}

// Unsubscribe removes l from group's subscribers.
func (l *Layer) Unsubscribe(ctx context.Context, group string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.subs[group] {
		return nil
	}
	delete(l.subs, group)
	l.bus.remove(group, l)
	return nil
}

// remove drops l from group. The slice is copied, never edited in place, so
// a Publish iterating the old slice is unaffected.
func (b *Bus) remove(group string, l *Layer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.groups[group]
	subs := make([]*Layer, 0, len(old))
	for _, s := range old {
		if s != l {
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 {
		delete(b.groups, group)
	} else {
		b.groups[group] = subs
	}
}

// Err always returns nil: an in-process layer cannot be partly down.
func (l *Layer) Err() error { return nil }

// Close unsubscribes l from every group.
func (l *Layer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for g := range l.subs {
		l.bus.remove(g, l)
	}
	l.subs = nil
	return nil
}
