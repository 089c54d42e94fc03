package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// relay is a TCP proxy between chatbench and a WebSocket server that
// understands just enough of the protocol to tamper with the server's
// frames: it passes the HTTP upgrade response through, then reads the
// server's frames one by one and can drop or duplicate the Nth frame (over
// all connections) that carries a chatbench message. Client-to-server bytes
// pass unchanged.
type relay struct {
	ln       net.Listener
	upstream string
	dropNth  int64 // 1-based; 0: drop nothing
	dupNth   int64 // 1-based; 0: duplicate nothing

	seen       atomic.Int64 // chatbench frames seen
	dropped    atomic.Int64
	duplicated atomic.Int64

	wg    sync.WaitGroup
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func startRelay(t *testing.T, upstream string, dropNth, dupNth int64) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, upstream: upstream, dropNth: dropNth, dupNth: dupNth}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *relay) url() string { return "ws://" + r.ln.Addr().String() }

func (r *relay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		down, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.upstream)
		if err != nil {
			_ = down.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, down, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			_, _ = io.Copy(up, down)
			_ = up.Close()
		}()
		go func() {
			defer r.wg.Done()
			_ = r.serverToClient(down, up)
			_ = down.Close()
		}()
	}
}

// serverToClient copies the upgrade response, then frame by frame.
func (r *relay) serverToClient(down, up net.Conn) error {
	br := bufio.NewReader(up)
	for { // HTTP response head
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if _, err := down.Write(line); err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	for {
		var h [14]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return err
		}
		n := 2
		length := uint64(h[1] & 0x7f)
		switch length {
		case 126:
			if _, err := io.ReadFull(br, h[2:4]); err != nil {
				return err
			}
			length, n = uint64(binary.BigEndian.Uint16(h[2:4])), 4
		case 127:
			if _, err := io.ReadFull(br, h[2:10]); err != nil {
				return err
			}
			length, n = binary.BigEndian.Uint64(h[2:10]), 10
		}
		if h[1]&0x80 != 0 { // masked (servers do not mask, but be exact)
			if _, err := io.ReadFull(br, h[n:n+4]); err != nil {
				return err
			}
			n += 4
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
		frame := append(h[:n:n], payload...)
		copies := 1
		if h[0]&0x0f == 1 && h[1]&0x80 == 0 && bytes.Contains(payload, []byte(`"cb|`)) {
			switch k := r.seen.Add(1); k {
			case r.dropNth:
				r.dropped.Add(1)
				copies = 0
			case r.dupNth:
				r.duplicated.Add(1)
				copies = 2
			}
		}
		for range copies {
			if _, err := down.Write(frame); err != nil {
				return err
			}
		}
	}
}
