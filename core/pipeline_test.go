package core

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// seqStore numbers messages per room like a real store; it fails while
// fail is set. Only AppendMessages is implemented.
type seqStore struct {
	chat.Store
	mu    sync.Mutex
	last  map[string]int64
	fail  bool
	delay time.Duration
}

func (s *seqStore) AppendMessages(ctx context.Context, msgs []*chat.Message) error {
	time.Sleep(s.delay) // a commit's fsync
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk on fire")
	}
	for _, m := range msgs {
		s.last[m.Room]++
		m.Seq = s.last[m.Room]
	}
	return nil
}

// PruneRevocations is the failing store's probe (every 2 s); it fails
// while the store does.
func (s *seqStore) PruneRevocations(context.Context, time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("disk on fire")
	}
	return 0, nil
}

// recorder is a Publisher that records what it was given, in order.
type recorder struct {
	mu   sync.Mutex
	seqs map[string][]int64
}

func (r *recorder) Publish(_ context.Context, m *chat.Message, _ uint64) error {
	r.mu.Lock()
	r.seqs[m.Room] = append(r.seqs[m.Room], m.Seq)
	r.mu.Unlock()
	return nil
}

func (r *recorder) published(room string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs[room])
}

// TestPublishInCommitOrder: batches are published on their own goroutine
// while the next one commits; every room's messages must still be
// published in seq order with no gap, each Done must come after its own
// publish, and Close must return only once everything is published and
// reported.
func TestPublishInCommitOrder(t *testing.T) {
	st := &seqStore{last: map[string]int64{}, delay: 200 * time.Microsecond}
	pub := &recorder{seqs: map[string][]int64{}}
	n, err := New(Config{Store: st, Publisher: pub, MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	const perRoom = 500
	rooms := []string{"a", "b", "c"}
	var mu sync.Mutex
	done := map[string][]int64{}
	var wg sync.WaitGroup
	for _, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perRoom {
				p := &Post{Room: room, Text: "x", Done: func(res Result) {
					if res.Err != nil {
						t.Errorf("room %s: %v", room, res.Err)
						return
					}
					if got := pub.published(room); int64(got) < res.Message.Seq {
						t.Errorf("room %s: seq %d reported before it was published (%d published)", room, res.Message.Seq, got)
					}
					mu.Lock()
					done[room] = append(done[room], res.Message.Seq)
					mu.Unlock()
				}}
				if err := n.Submit(context.Background(), p); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		for i, s := range pub.seqs[room] {
			if s != int64(i+1) {
				t.Fatalf("room %s: published seq %d at position %d", room, s, i)
			}
		}
		if len(pub.seqs[room]) != perRoom || len(done[room]) != perRoom {
			t.Fatalf("room %s: %d published, %d reported, want %d", room, len(pub.seqs[room]), len(done[room]), perRoom)
		}
		for i, s := range done[room] {
			if s != int64(i+1) {
				t.Fatalf("room %s: reported seq %d at position %d", room, s, i)
			}
		}
	}
	if s := n.Stats(); s.Stored != 3*perRoom || s.Commits == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFailedCommitReportedInOrder: a failed batch's senders get the error,
// after the reports of the batches committed before it.
func TestFailedCommitReportedInOrder(t *testing.T) {
	st := &seqStore{last: map[string]int64{}}
	pub := &recorder{seqs: map[string][]int64{}}
	n, err := New(Config{Store: st, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	results := make(chan Result, 2)
	submit := func() {
		t.Helper()
		if err := n.Submit(context.Background(), &Post{Room: "a", Text: "x", Done: func(r Result) { results <- r }}); err != nil {
			t.Fatal(err)
		}
	}
	submit()
	if r := <-results; r.Err != nil || r.Message.Seq != 1 {
		t.Fatalf("first: %+v", r)
	}
	st.mu.Lock()
	st.fail = true
	st.mu.Unlock()
	submit()
	r := <-results
	if r.Err == nil || !errors.Is(r.Err, ErrStoreUnavailable) {
		t.Fatalf("failed commit reported %+v", r)
	}
	if n.Err() == nil {
		t.Fatal("Err is nil after a failed commit")
	}
	if got := pub.published("a"); got != 1 {
		t.Fatalf("%d published, want only the stored one", got)
	}
}
