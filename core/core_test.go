package core_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/sqlite"
)

// recorder is a Publisher that records what it was given, in order.
type recorder struct {
	mu   sync.Mutex
	msgs []*chat.Message
}

func (r *recorder) Publish(_ context.Context, m *chat.Message, _ uint64) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return nil
}

func newNode(t *testing.T, historyOff bool) (*core.Node, *recorder, chat.Store) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	n, err := core.New(core.Config{Store: st, Publisher: rec, HistoryOff: historyOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n, rec, st
}

// submit offers a message and waits for its outcome.
func submit(t *testing.T, n *core.Node, room, user, text, id string) core.Result {
	t.Helper()
	done := make(chan core.Result, 1)
	if err := n.Submit(context.Background(), &core.Post{Room: room, User: user, Text: text, ClientID: id, Done: func(r core.Result) { done <- r }}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second): // a failure bound
		t.Fatal("no outcome")
		return core.Result{}
	}
}

func TestSubmitStoresPublishesInOrder(t *testing.T) {
	n, rec, st := newNode(t, false)
	var wg sync.WaitGroup
	results := make([]core.Result, 300)
	for i := range results {
		wg.Add(1)
		if err := n.Submit(context.Background(), &core.Post{Room: "chat:r", User: "u", Text: fmt.Sprint(i), ClientID: fmt.Sprint("id", i),
			Done: func(r core.Result) { results[i] = r; wg.Done() }}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, r := range results {
		if r.Err != nil || r.Message == nil || r.Message.Seq < 1 {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	// Published in seq order, 1..300, once each.
	for i, m := range rec.msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("publish %d has seq %d", i, m.Seq)
		}
	}
	if len(rec.msgs) != 300 {
		t.Fatalf("%d published", len(rec.msgs))
	}
	// A retry is a duplicate with the same seq, published again (receivers
	// drop seqs they delivered), and not stored twice.
	r := submit(t, n, "chat:r", "u", "7", "id7")
	if !r.Message.Duplicate || r.Message.Seq != results[7].Message.Seq {
		t.Errorf("retry: %+v, want a duplicate of seq %d", r.Message, results[7].Message.Seq)
	}
	if _, last, err := st.RoomSeq(t.Context(), "chat:r"); err != nil || last != 300 {
		t.Errorf("room seq %d, %v; want 300", last, err)
	}
	if s := n.Stats(); s.Stored != 300 || s.Duplicates != 1 || s.Commits < 1 || s.Commits > 301 {
		t.Errorf("stats %+v", s)
	}
}

func TestSubmitInvalidAndClosed(t *testing.T) {
	n, _, _ := newNode(t, false)
	// The store refuses what core's checks would have caught: the sender
	// gets the error, nothing is published.
	if r := submit(t, n, "chat:r", "u", "", ""); r.Err == nil || chat.ErrorCode(r.Err) != chat.EINVALID {
		t.Errorf("empty text: %v, want EINVALID", r.Err)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := n.Submit(context.Background(), &core.Post{Room: "chat:r", User: "u", Text: "late"})
	if !errors.Is(err, core.ErrStopped) {
		t.Errorf("Submit after Close: %v, want ErrStopped", err)
	}
}

func TestHistoryOff(t *testing.T) {
	n, rec, st := newNode(t, true)
	if n.History() {
		t.Fatal("History() with HistoryOff")
	}
	r := submit(t, n, "chat:r", "u", "hi", "x")
	if r.Err != nil || r.Message.Seq != 0 || len(rec.msgs) != 1 {
		t.Errorf("history off: %+v, %d published", r, len(rec.msgs))
	}
	if _, last, _ := st.RoomSeq(t.Context(), "chat:r"); last != 0 {
		t.Errorf("history off stored a message (seq %d)", last)
	}
}

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		text, code string
	}{{"hi", ""}, {"  ", core.CodeEmptyMessage}, {string(make([]rune, core.MaxMessageLen+1)), core.CodeMessageTooLong}} {
		got := ""
		if inv := core.CheckText(tc.text); inv != nil {
			got = inv.Code
		}
		if got != tc.code && !(tc.code == core.CodeMessageTooLong && got != "") {
			t.Errorf("CheckText(%d chars) = %q, want %q", len(tc.text), got, tc.code)
		}
	}
	for id, ok := range map[string]bool{"a": true, "abc-123_~!": true, "": false, "tab\t": false, "é": false,
		string(make([]byte, 65)): false} {
		if (core.CheckClientID(id) == nil) != ok {
			t.Errorf("CheckClientID(%q) ok=%v, want %v", id, !ok, ok)
		}
	}
}
