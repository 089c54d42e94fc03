package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestParseFrame(t *testing.T) {
	msg := appendMessage(nil, "ab12", 3, 1, 42, 1700000000123456789, 80)
	text := strings.TrimSuffix(strings.TrimPrefix(string(msg), `{"message":"`), `"}`)
	if len(text) != 80 {
		t.Fatalf("text is %d bytes, want 80: %q", len(text), text)
	}
	tests := []struct {
		name  string
		frame string
		ok    bool
	}{
		{"client frame", string(msg), true},
		{"chatd", `{"type":"chat_message","message":"` + text + `","user":"guest-1a2b","datetime":"2026-11-22T03:00:00.123Z"}`, true},
		{"django", `{"message": "` + text + `"}`, true},
		{"not chatbench", `{"type":"chat_message","message":"hello","user":"u"}`, false},
		{"other type", `{"type":"presence","users":[]}`, false},
		{"truncated", `{"message":"cb|ab12|3|1|42`, false},
		{"non-digit", `{"message":"cb|ab12|3|x|42|17|"}`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := parseFrame([]byte(tt.frame))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if string(m.run) != "ab12" || m.room != 3 || m.sender != 1 || m.seq != 42 || m.ns != 1700000000123456789 {
				t.Fatalf("parsed %+v", m)
			}
		})
	}
}

func TestParseFrameAllocs(t *testing.T) {
	frame := []byte(`{"type":"chat_message","message":"cb|ab12|3|1|42|1700000000123456789|xxxx","user":"guest-1a2b"}`)
	c := &client{run: "ab12", room: 3, tracks: make([]track, 2), win: &window{}, lat: newHist(), once: new(sync.Once)}
	c.win.from.Store(1)
	c.win.to.Store(1 << 62)
	c.handle(frame, 1700000000123456789+1000) // grow the bitset once
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(1000, func() {
		buf = appendMessage(buf[:0], "ab12", 3, 1, 43, 1700000000123456789, 100)
	}); n != 0 {
		t.Fatalf("appendMessage allocates %.1f times per message", n)
	}
	frame2 := []byte(`{"message":"cb|ab12|3|1|43|1700000000123456789|xx"}`)
	if n := testing.AllocsPerRun(1000, func() { c.handle(frame2, 1700000000123456789+5000) }); n != 0 {
		t.Fatalf("handle allocates %.1f times per frame", n)
	}
	frame3 := []byte(`{"type":"chat_message","message":"cb|ab12|3|1|44|1700000000123456789|xx","user":"u","seq":99}`)
	ack := []byte(`{"type":"ack","id":"ab12.0.44.1700000000123456789","seq":99}`)
	c.local = 0
	c.handle(ack, 1700000000123456789+5000) // first ack: the bitset and histogram
	if n := testing.AllocsPerRun(1000, func() { c.handle(frame3, 1700000000123456789+5000); c.handle(ack, 1700000000123456789+5000) }); n != 0 {
		t.Fatalf("handle allocates %.1f times per frame with a seq or an ack", n)
	}
}

// TestClientAccounting feeds one receiver a hand-made sequence of frames.
func TestClientAccounting(t *testing.T) {
	c := &client{run: "r1", room: 0, local: 1, tracks: make([]track, 2), win: &window{}, once: new(sync.Once)}
	c.win.from.Store(100)
	c.win.to.Store(1 << 62)
	f := func(run string, room, sender int, seq uint64) []byte {
		return appendMessage(nil, run, room, sender, seq, 1000, 0)
	}
	for _, fr := range [][]byte{
		f("r1", 0, 0, 0),
		f("r1", 0, 0, 2), // 1 is late
		f("r1", 0, 0, 1), // out of order
		f("r1", 0, 0, 2), // duplicate
		f("r1", 0, 1, 0), // own message
		f("r1", 1, 0, 3), // wrong room
		f("zz", 0, 0, 9), // other run
		[]byte(`{"type":"typing"}`),
		f("r1", 0, 5, 0), // sender index out of range
	} {
		c.handle(fr, 2000)
	}
	got := [...]uint64{c.recvOthers.Load(), c.recvSelf.Load(), c.dup, c.ooo, c.wrongRoom, c.foreign, c.other, c.frames}
	want := [...]uint64{3, 1, 1, 1, 1, 1, 2, 9}
	if got != want {
		t.Fatalf("others, self, dup, ooo, wrong room, foreign, other, frames = %v, want %v", got, want)
	}
	if c.lat.n != 4 || c.lat.max != 1000 {
		t.Fatalf("latency samples %d max %d, want 4 of 1000ns", c.lat.n, c.lat.max)
	}
}

// TestSeqAndAckAccounting: room seqs must follow each other across every
// frame of the room; acks of this sender's ids are counted once, free a
// window slot and give a latency; a refusal naming an id frees one too.
func TestSeqAndAckAccounting(t *testing.T) {
	c := &client{run: "r1", room: 0, local: 0, tracks: make([]track, 1), win: &window{}, slots: make(chan struct{}, 4)}
	c.win.from.Store(100)
	c.win.to.Store(1 << 62)
	chat := func(run string, seq uint64, roomSeq int) []byte {
		text := strings.TrimSuffix(strings.TrimPrefix(string(appendMessage(nil, run, 0, 0, seq, 1000, 40)), `{"message":"`), `"}`)
		return []byte(`{"type":"chat_message","message":"` + text + `","user":"u","datetime":"d","room":"r","seq":` + strconv.Itoa(roomSeq) + `,"id":"x"}`)
	}
	for range 3 {
		c.slots <- struct{}{}
	}
	for _, fr := range [][]byte{
		chat("old", 7, 40), // history of an earlier run
		chat("old", 8, 41),
		[]byte(`{"type":"chat_message","message":"hello","user":"u","datetime":"d","room":"r","seq":42}`), // not chatbench's
		chat("r1", 0, 43),
		chat("r1", 1, 45), // 44 never came
		chat("r1", 1, 45), // repeated
		[]byte(`{"type":"ack","id":"r1.0.0.1000","seq":43}`),
		[]byte(`{"type":"ack","id":"r1.0.0.1000","seq":43}`), // acked twice
		[]byte(`{"type":"ack","id":"r1.0.1.1500","seq":45}`),
		[]byte(`{"type":"ack","id":"zz.0.2.1500","seq":46}`), // another run's
		[]byte(`{"type":"error","code":"unavailable","detail":"d","message":"m","id":"r1.0.2.1600"}`),
	} {
		c.handle(fr, 2000)
	}
	if c.seqFrames != 6 || c.seqGaps != 1 || c.seqDups != 1 || c.lastSeq != 45 {
		t.Fatalf("seq frames %d gaps %d dups %d last %d, want 6, 1, 1, 45", c.seqFrames, c.seqGaps, c.seqDups, c.lastSeq)
	}
	if c.acked.Load() != 2 || c.ackDup != 1 || c.nacked.Load() != 1 || len(c.slots) != 0 {
		t.Fatalf("acked %d, dup %d, refused %d, slots taken %d; want 2, 1, 1, 0", c.acked.Load(), c.ackDup, c.nacked.Load(), len(c.slots))
	}
	if c.ackLat == nil || c.ackLat.n != 2 || c.ackLat.max != 1000 {
		t.Fatalf("ack latency %+v", c.ackLat)
	}
	if c.foreign != 2 || c.dup != 1 || c.recvSelf.Load() != 2 || c.errFrames != 1 {
		t.Fatalf("foreign %d, dup %d, own %d, error frames %d", c.foreign, c.dup, c.recvSelf.Load(), c.errFrames)
	}
}

func TestAppendMessageID(t *testing.T) {
	b := appendMessageID(nil, "ab12", 3, 7, 42, 1700000000123456789, 60)
	if !strings.HasSuffix(string(b), `","id":"ab12.7.42.1700000000123456789"}`) || !strings.HasPrefix(string(b), `{"message":"cb|ab12|3|7|42|`) {
		t.Fatalf("%s", b)
	}
	a, ok := parseAck([]byte(`{"type":"ack","id":"ab12.7.42.1700000000123456789","seq":17}`))
	if !ok || string(a.run) != "ab12" || a.sender != 7 || a.seq != 42 || a.ns != 1700000000123456789 || a.room != 17 {
		t.Fatalf("parseAck = %+v, %v", a, ok)
	}
	if a, ok := parseAck([]byte(`{"type":"ack","id":"ab12.7.43.1700000000123456789"}`)); !ok || a.seq != 43 || a.room != 0 {
		t.Fatalf("HISTORY=off ack: %+v, %v", a, ok)
	}
	for _, bad := range []string{`{"type":"ack","id":"ab12.7.42","seq":17}`, `{"type":"ack","id":"hello","seq":1}`, `{"type":"ack","id":"a.1.2"}`, `{"type":"hello"}`} {
		if _, ok := parseAck([]byte(bad)); ok {
			t.Errorf("parseAck(%s) accepted", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { b = appendMessageID(b[:0], "ab12", 3, 7, 43, 1700000000123456789, 60) }); n != 0 {
		t.Fatalf("appendMessageID allocates %.1f times", n)
	}
}

func TestHist(t *testing.T) {
	// Bucket boundaries are contiguous and increasing.
	prev := -1
	for v := uint64(0); v < 1<<20; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d", v, i, prev)
		}
		lo, w := histLower(i)
		if v < lo || v >= lo+w {
			t.Fatalf("%d not in bucket %d [%d,%d)", v, i, lo, lo+w)
		}
		prev = i
	}
	if i := histIndex(1 << 40); i != histBuckets-1 {
		t.Fatalf("clamped index %d, want %d", i, histBuckets-1)
	}
	h := newHist()
	for i := 1; i <= 1000; i++ {
		h.record(int64(i) * 1000) // 1..1000 µs
	}
	for _, q := range []struct {
		q    float64
		want float64 // µs
	}{{0.5, 500}, {0.9, 900}, {0.99, 990}} {
		got := float64(h.quantile(q.q)) / 1000
		if got < q.want*0.96 || got > q.want*1.04 {
			t.Errorf("quantile(%v) = %.1fµs, want about %.0f", q.q, got, q.want)
		}
	}
	o := newHist()
	o.record(5e9)
	h.merge(o)
	if h.n != 1001 || h.max != 5e9 || h.min != 1000 {
		t.Fatalf("merged n=%d max=%d min=%d", h.n, h.max, h.min)
	}
}

func TestCheckTarget(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:8000", "ws://127.1.2.3:1", "ws://localhost:8001", "ws://[::1]:80", "wss://LOCALHOST"} {
		if _, err := checkTarget(u, false); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1:8000", "ws://example.com", "ws://0.0.0.0:8000", "http://127.0.0.1", "ws://"} {
		if _, err := checkTarget(u, false); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := checkTarget("ws://example.com", true); err != nil {
		t.Errorf("-allow-remote: %v", err)
	}
}

func TestRunRefusesRemote(t *testing.T) {
	cfg := DefaultConfig()
	cfg.URL = "ws://192.0.2.1:8000"
	if _, err := Run(context.Background(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("err = %v", err)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var out strings.Builder
	_ = run(context.Background(), []string{"-h"}, io.Discard, &out)
	for _, f := range []string{"-url", "-path", "-rooms", "-clients", "-senders", "-rate", "-size", "-duration", "-warmup",
		"-connect-rate", "-origin", "-idle", "-pid", "-json", "-allow-remote", "-timeout", "-echo",
		"-room-names", "-cookies", "-v1", "-ack", "-window", "-restart-cmd", "-resume-send", "-reconnect-timeout"} {
		if !strings.Contains(out.String(), "  "+f+" ") && !strings.Contains(out.String(), "  "+f+"\n") {
			t.Errorf("-h does not document %s", f)
		}
	}
}

func TestSampleProcSelf(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil || s.rssKiB <= 0 {
		t.Fatalf("sampleProc(self) = %+v, %v", s, err)
	}
}
