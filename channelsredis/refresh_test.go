package channelsredis

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/redistest"
	goredis "github.com/redis/go-redis/v9"
)

// TestRejoinRefreshesMembership checks the compensation for group expiry:
// rejoin dates the membership again, so group_send's 24 h cut never
// removes a chatd process that is still in the room.
func TestRejoinRefreshesMembership(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opt := Options{Hosts: []string{srv.URL()}, Deployment: "aaaaaaaaaaaaaaaa", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := opt.setDefaults(); err != nil {
		t.Fatal(err)
	}
	b, err := newBridge(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	b.join(ctx, "chat_lobby", chat.PublicRoom("lobby"))
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	name := b.channelName("chat_lobby")
	old := float64(time.Now().Add(-23 * time.Hour).Unix())
	if err := rc.ZAdd(ctx, "asgi:group:chat_lobby", goredis.Z{Score: old, Member: name}).Err(); err != nil {
		t.Fatal(err)
	}
	b.rejoin()
	score := rc.ZScore(ctx, "asgi:group:chat_lobby", name).Val()
	if score < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("score %v not refreshed", score)
	}
	if ttl := rc.TTL(ctx, "asgi:group:chat_lobby").Val(); ttl < 23*time.Hour {
		t.Errorf("group ttl %v", ttl)
	}
	// Leaving removes the member.
	b.leave(ctx, "chat_lobby")
	if n := rc.ZCard(ctx, "asgi:group:chat_lobby").Val(); n != 0 {
		t.Errorf("%d members after leave", n)
	}
}
