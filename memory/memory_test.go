package memory_test

import (
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/layertest"
	"github.com/chatd/chat/memory"
)

func TestConformance(t *testing.T) {
	bus := memory.NewBus()
	layertest.Run(t, func(t *testing.T, recv chat.Receiver) chat.Layer {
		l := bus.Attach(recv)
		t.Cleanup(func() { _ = l.Close() })
		return l
	})
}
