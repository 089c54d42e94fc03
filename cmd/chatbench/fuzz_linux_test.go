//go:build linux

package main

import (
	"sync"
	"testing"
)

// FuzzParseFrames feeds arbitrary server bytes to the epoll client's frame
// parser and the message parser: they must never panic, never consume more
// than they were given, and account every complete text frame.
func FuzzParseFrames(f *testing.F) {
	f.Add([]byte("\x81\x05hello"))
	f.Add(append([]byte{0x81, 0x2a}, []byte(`{"message":"cb|ab|0|0|1|17|xxxxxxxxxxxxxx"}`)[:42]...))
	f.Add([]byte{0x89, 0x00, 0x8a, 0x00, 0x88, 0x02, 0x03, 0xe8})
	f.Add([]byte{0x01, 0x03, 'a', 'b', 'c', 0x80, 0x01, 'd'})
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &client{run: "ab", tracks: make([]track, 1), win: &window{}, once: new(sync.Once)}
		rc := &rawConn{c: c, fd: -1, closed: true} // writes (pongs) fail harmlessly
		c.conn = rc
		c.quit.Store(true)
		n, _ := rc.parse(data, 1000)
		if n < 0 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		_, _ = parseFrame(data)
	})
}
