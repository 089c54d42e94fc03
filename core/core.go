// Package core is where a message enters a room. Every way in – a
// WebSocket frame (package ws), and later the HTTP publish API and the
// Django interop layer – calls Node.Submit, and every message then takes
// the same path:
//
//	validate → store (one transaction per batch, the room's next seq)
//	         → publish (in commit order) → deliver (in seq order, by the hub)
//	         → acknowledge to the sender (only after the commit)
//
// The Node owns that path and the room's history; it knows nothing about
// WebSockets. The transport (the ws hub) implements Publisher: it encodes a
// stored message once, frames it once and hands the same bytes to every
// local member, so persistence keeps the zero-copy fan-out.
//
// Group commit: Submit queues the message for a committer goroutine, which
// takes everything queued (up to Config.MaxBatch) and stores it with one
// Store.AppendMessages call – one transaction; a publisher goroutine then
// publishes the batch in seq order and acknowledges it while the committer
// already stores the next one (the commit, with its fsync, and the fan-out
// overlap). Under load batches grow by themselves (no timer waits for a
// batch to fill), so a busy room costs one commit per batch, not per
// message, and an idle one answers at once.
//
// With no Store (HISTORY=off) the node keeps chatd's ephemeral behaviour:
// Submit publishes at once, on the caller's goroutine, with no seq.
package core

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	chat "github.com/chatd/chat"
)

// MaxMessageLen is the longest chat message accepted, in characters.
const MaxMessageLen = 4000

// MaxClientIDLen is the longest client-chosen message id, in bytes.
const MaxClientIDLen = 64

// Codes of Invalid errors; the ws package sends them as error frame codes
// and the HTTP API as the "code" of a 400 answer.
const (
	CodeEmptyMessage   = "empty_message"
	CodeMessageTooLong = "message_too_long"
	CodeInvalidID      = "invalid_id"
	CodeInvalidText    = "invalid_message"
)

// Invalid is a message refused before it was stored: the sender's mistake.
type Invalid struct {
	Code   string
	Detail string
}

func (e *Invalid) Error() string { return "core: " + e.Code + ": " + e.Detail }

// CheckText returns an *Invalid unless text is a message chatd accepts: not
// empty or only white space, at most MaxMessageLen characters, without NUL
// characters (which no store keeps: one would fail the whole group commit
// it is part of, everybody's messages with it).
func CheckText(text string) *Invalid {
	if strings.TrimSpace(text) == "" {
		return &Invalid{CodeEmptyMessage, "the message is empty"}
	}
	if strings.IndexByte(text, 0) >= 0 {
		return &Invalid{CodeInvalidText, "the message contains a NUL character (\\u0000)"}
	}
	if n := utf8.RuneCountInString(text); n > MaxMessageLen {
		return &Invalid{CodeMessageTooLong, "the message is longer than the limit of " + strconv.Itoa(MaxMessageLen) + " characters"}
	}
	return nil
}

// CheckClientID returns an *Invalid unless id is a valid client message id:
// 1 to MaxClientIDLen printable ASCII characters.
func CheckClientID(id string) *Invalid {
	if id == "" || len(id) > MaxClientIDLen {
		return &Invalid{CodeInvalidID, "a message id is 1 to " + strconv.Itoa(MaxClientIDLen) + " printable ASCII characters"}
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return &Invalid{CodeInvalidID, "a message id is 1 to " + strconv.Itoa(MaxClientIDLen) + " printable ASCII characters"}
		}
	}
	return nil
}

// ErrStopped is returned by Submit after Close.
var ErrStopped = &chat.Error{Code: chat.EUNAVAILABLE, Message: "The server is shutting down; send the message again after reconnecting."}

// ErrStoreUnavailable wraps store failures reported to senders.
var ErrStoreUnavailable = &chat.Error{Code: chat.EUNAVAILABLE, Message: "The message could not be stored right now; it was not sent. Try again."}

// Publisher carries a stored message to every process's local members of
// its room. The ws hub implements it. Publish is called by one goroutine
// at a time per room, in seq order; it must not block on slow clients.
// origin names the sending connection (0 for none), so that a connection
// that asked not to get its own messages back can be skipped.
type Publisher interface {
	Publish(ctx context.Context, m *chat.Message, origin uint64) error
}

// Post is a message offered to a room.
type Post struct {
	Room     string // the room's Key
	UserID   int64  // 0 for guests and bots
	User     string // name shown in frames
	Name     string // the sender's display name ("" for none), stored with the message
	Text     string
	ClientID string // optional; makes retries idempotent
	Origin   uint64 // the sending connection, passed to Publisher

	// Done, if not nil, is called once with the outcome: after the commit
	// (and the publish) for a stored message, or with the error. It runs on
	// the committer goroutine and must not block.
	Done func(Result)
}

// Result is the outcome of a Submit.
type Result struct {
	Message *chat.Message // the stored message (Seq 0 with history off)
	// Err is why the message was not stored (nil if it was). A message
	// that was stored but could not be published has Err nil and
	// PublishErr set: it is safe (other clients get it from history), so
	// the sender gets its ack.
	Err        error
	PublishErr error
}

// Config configures a Node.
type Config struct {
	// Store keeps accounts, history and revocations.
	Store chat.Store
	// HistoryOff keeps no messages (HISTORY=off): no seq, no ack after a
	// commit, no history on join and no resume. Revocations still work.
	HistoryOff bool
	// Publisher delivers stored messages; required.
	Publisher Publisher
	// MaxBatch bounds the messages of one commit; default 512.
	MaxBatch int
	// QueueLen bounds the messages waiting for a commit; Submit blocks
	// (until its context ends) while the queue is full. Default 8192.
	QueueLen int
	// Now is the clock that dates messages; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Node is the message path of one chatd process. It is safe for
// concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store chat.Store // nil with history off
	pub   Publisher

	queue chan *Post
	// stopMu guards stopped against Submit's send on queue: Close takes
	// it for writing to close the queue once no Submit is sending.
	stopMu  sync.RWMutex
	stopped bool
	done    chan struct{} // closed when the committer has finished

	// storeErr is the last commit's failure (nil after a success); Err
	// reports it for /readyz.
	storeErr atomic.Pointer[error]

	// Counters for /metrics, health and benchmarks.
	stored     atomic.Uint64
	duplicates atomic.Uint64
	commits    atomic.Uint64
}

// New returns a Node and starts its committer.
func New(cfg Config) (*Node, error) {
	if cfg.Publisher == nil {
		return nil, errors.New("core: Config.Publisher is required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 8192
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:   cfg,
		log:   cfg.Logger,
		store: cfg.Store,
		pub:   cfg.Publisher,
		queue: make(chan *Post, cfg.QueueLen),
		done:  make(chan struct{}),
	}
	if cfg.HistoryOff {
		n.store = nil
	}
	if n.store != nil {
		go n.commitLoop()
	} else {
		close(n.done)
	}
	return n, nil
}

// History reports whether messages are stored (HISTORY is on).
func (n *Node) History() bool { return n.store != nil }

// Store returns the node's store (nil with history off).
func (n *Node) Store() chat.Store { return n.store }

// Submit offers p to its room. The text and client id must already have
// passed CheckText and CheckClientID. With history on, Submit queues the
// message for the committer and returns; p.Done reports the outcome. It
// blocks only while the commit queue is full, until ctx ends (then it
// returns ctx's error and p.Done is not called). With history off it
// publishes at once and calls p.Done before returning.
func (n *Node) Submit(ctx context.Context, p *Post) error {
	if n.store == nil {
		m := &chat.Message{Room: p.Room, UserID: p.UserID, User: p.User, Name: p.Name, ClientID: p.ClientID, Text: p.Text, Time: n.now()}
		err := n.pub.Publish(ctx, m, p.Origin)
		if p.Done != nil {
			p.Done(Result{Message: m, Err: err})
		}
		return nil
	}
	n.stopMu.RLock()
	defer n.stopMu.RUnlock()
	if n.stopped {
		return ErrStopped
	}
	select {
	case n.queue <- p:
		return nil
	default:
	}
	select {
	case n.queue <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) now() time.Time { return n.cfg.Now().UTC().Truncate(time.Microsecond) }

// batch is one group commit on its way from the committer to the
// publisher: the posts, their messages and the commit's outcome.
type batch struct {
	posts []*Post
	msgs  []*chat.Message
	err   error // the commit failed; nothing was stored
}

// commitLoop is the committer goroutine: it stores whatever is queued in
// one transaction and hands the batch to the publisher, which publishes
// and reports each message in order while the next batch is being
// stored. Two batches circulate between them, so a batch is published
// while the next one commits, and a slow publisher holds up the committer
// after one batch.
func (n *Node) commitLoop() {
	pubq := make(chan *batch, 1)
	free := make(chan *batch, 2)
	for range 2 {
		free <- &batch{posts: make([]*Post, 0, n.cfg.MaxBatch), msgs: make([]*chat.Message, 0, n.cfg.MaxBatch)}
	}
	go n.publishLoop(pubq, free)
	defer close(pubq)
	for {
		p, ok := <-n.queue
		if !ok {
			return
		}
		b := <-free
		b.posts = append(b.posts[:0], p)
	fill:
		for len(b.posts) < n.cfg.MaxBatch {
			select {
			case p, ok := <-n.queue:
				if !ok {
					break fill
				}
				b.posts = append(b.posts, p)
			default:
				break fill
			}
		}
		b.msgs = b.msgs[:0]
		now := n.now()
		for _, p := range b.posts {
			b.msgs = append(b.msgs, &chat.Message{Room: p.Room, UserID: p.UserID, User: p.User, Name: p.Name, ClientID: p.ClientID, Text: p.Text, Time: now})
		}
		b.err = n.commit(b.msgs)
		pubq <- b
	}
}

// commitTimeout bounds one group commit.
const commitTimeout = 10 * time.Second

// commit stores one batch and returns the error to report to its senders.
func (n *Node) commit(msgs []*chat.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	err := n.store.AppendMessages(ctx, msgs)
	cancel()
	if err != nil {
		if n.storeErr.Swap(&err) == nil {
			n.log.Error("core: cannot store messages; senders get error frames until the store answers again", "err", err)
			go n.probe()
		}
		if chat.ErrorCode(err) != chat.EINVALID {
			return errors.Join(ErrStoreUnavailable, err)
		}
		return err
	}
	if n.storeErr.Swap(nil) != nil {
		n.log.Info("core: the store answers again; messages are stored")
	}
	n.commits.Add(1)
	return nil
}

// publishLoop is the publisher goroutine: it publishes the committed
// batches in commit order and reports every post's outcome (in order, for
// failed batches too), then returns the batch to the committer. It closes
// n.done when the committer has stopped and everything is published.
func (n *Node) publishLoop(pubq <-chan *batch, free chan<- *batch) {
	defer close(n.done)
	for b := range pubq {
		for i, m := range b.msgs {
			p := b.posts[i]
			if b.err != nil {
				if p.Done != nil {
					p.Done(Result{Err: b.err})
				}
				continue
			}
			if m.Duplicate {
				n.duplicates.Add(1)
			} else {
				n.stored.Add(1)
			}
			// A duplicate is published again: its first publish may never have
			// happened (a crash between commit and publish). Receivers drop a
			// seq they have already delivered, so nobody sees it twice.
			perr := n.pub.Publish(context.Background(), m, p.Origin)
			if p.Done != nil {
				p.Done(Result{Message: m, PublishErr: perr})
			}
		}
		clear(b.posts)
		clear(b.msgs)
		b.err = nil
		free <- b
	}
}

// probeInterval is how often a failing store is tried again when no
// message does it.
const probeInterval = 2 * time.Second

// probe tries the store with a small write every probeInterval while the
// last commit failed, so Err (and /readyz) clears by itself when the store
// returns, even if nobody sends. A commit that succeeds clears it too.
func (n *Node) probe() {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for n.storeErr.Load() != nil {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		// Deleting revocations older than the zero time deletes nothing,
		// but it is a write: it proves the store takes writes again.
		_, err := n.store.PruneRevocations(ctx, time.Time{})
		cancel()
		if err == nil {
			if n.storeErr.Swap(nil) != nil {
				n.log.Info("core: the store answers again; messages are stored")
			}
			return
		}
	}
}

// Err reports why messages cannot be stored right now (nil when the last
// commit succeeded).
func (n *Node) Err() error {
	if p := n.storeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats are the node's counters.
type Stats struct {
	Stored     uint64 `json:"stored"`
	Duplicates uint64 `json:"duplicates"`
	Commits    uint64 `json:"commits"`
	Queued     int    `json:"queued"` // messages waiting for a commit now
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Stored: n.stored.Load(), Duplicates: n.duplicates.Load(), Commits: n.commits.Load(), Queued: len(n.queue)}
}

// Close stops accepting messages, lets the committer store and publish
// everything already queued (in-flight commits finish), and returns when it
// has, or when ctx ends.
func (n *Node) Close(ctx context.Context) error {
	n.stopMu.Lock()
	if !n.stopped {
		n.stopped = true
		if n.store != nil {
			close(n.queue)
		}
	}
	n.stopMu.Unlock()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
