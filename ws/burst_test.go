package ws

import (
	"context"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/memory"
)

// TestJoinBurstKeepsNoArrays: the history a connection gets on joining is
// one burst; once it is written the writer must not keep the grown queue
// array as its spare (15,000 joins with 50 frames each kept 2.3 KiB per
// connection until the keepalive trim). A live burst keeps it, as before:
// an active connection reuses its arrays.
func TestJoinBurstKeepsNoArrays(t *testing.T) {
	h := NewHub(Config{SendQueueBytes: 1 << 20, HistoryOnJoin: 50})
	h.layer = memory.New(h.Receive)
	n, err := core.New(core.Config{Store: emptyStore{}, Publisher: h})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	h.UseNode(n)
	old := pipeConns(t, h, "g", 1)[0]
	r := h.rooms["g"]
	startSequencer(r)
	frame := newFrame(opText, []byte(`{"type":"chat_message","message":"hi"}`))
	for seq := int64(1); seq <= 60; seq++ {
		h.sequence(r, seq, frame, 0, 0, 0)
	}
	waitWritten(t, old)
	old.mu.Lock()
	kept := cap(old.spare)
	old.mu.Unlock()
	if kept == 0 {
		t.Fatal("a live burst left no spare array; the writer should keep it for the next one")
	}

	c := pipeConns(t, h, "g", 1)[0] // joins with the latest 50 as history
	waitWritten(t, c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spare != nil || c.queue != nil || c.dropSpare {
		t.Fatalf("after the join's history: spare cap %d, queue cap %d, dropSpare %v; want no arrays kept", cap(c.spare), cap(c.queue), c.dropSpare)
	}
}

// emptyStore is a store with no messages; only what joining a room reads.
type emptyStore struct{ chat.Store }

func (emptyStore) Messages(context.Context, string, chat.MessageQuery) ([]*chat.Message, error) {
	return nil, nil
}

func (emptyStore) RoomSeq(context.Context, string) (int64, int64, error) { return 0, 0, nil }

// waitWritten waits until c's writer has written everything queued.
func waitWritten(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		idle := !c.writing && len(c.queue) == 0 && c.queued == 0
		c.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}
