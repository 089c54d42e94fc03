package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints one line a second while a run goes: phase, connections,
// messages sent and received and their rates over the last second.
type progress struct {
	w       io.Writer
	clients []*client
	start   time.Time

	mu    sync.Mutex // guards phase
	phase string

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

func newProgress(w io.Writer, clients []*client, enabled bool) *progress {
	p := &progress{w: w, clients: clients, start: time.Now(), phase: "start",
		quit: make(chan struct{}), done: make(chan struct{})}
	if !enabled {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) setPhase(s string) {
	p.mu.Lock()
	p.phase = s
	p.mu.Unlock()
}

// stop ends the progress line; it may be called more than once.
func (p *progress) stop() {
	p.stopOnce.Do(func() { close(p.quit) })
	<-p.done
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastRecv uint64
	last := time.Now()
	for {
		select {
		case <-p.quit:
			return
		case now := <-t.C:
			var conns int
			var sent, recv uint64
			for _, c := range p.clients {
				if c.up.Load() {
					select {
					case <-c.done:
					default:
						conns++
					}
				}
				sent += c.sent.Load()
				recv += c.recvOthers.Load() + c.recvSelf.Load()
			}
			dt := now.Sub(last).Seconds()
			p.mu.Lock()
			phase := p.phase
			p.mu.Unlock()
			fmt.Fprintf(p.w, "[%4.0fs] %-7s conns %d/%d  sent %d (%.0f/s)  recv %d (%.0f/s)\n",
				now.Sub(p.start).Seconds(), phase, conns, len(p.clients),
				sent, float64(sent-lastSent)/dt, recv, float64(recv-lastRecv)/dt)
			lastSent, lastRecv, last = sent, recv, now
		}
	}
}
