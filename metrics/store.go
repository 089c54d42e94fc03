package metrics

import (
	"context"
	"errors"
	"time"

	chat "github.com/chatd/chat"
	"github.com/prometheus/client_golang/prometheus"
)

// Store operations that are timed, as the op label names them.
const (
	opAppend      = "append"
	opMessages    = "messages"
	opRoomSeq     = "room_seq"
	opSession     = "session"
	opRevocations = "revocations"
	opPrune       = "prune"
)

var storeOps = []string{opAppend, opMessages, opRoomSeq, opSession, opRevocations, opPrune}

// Store returns s instrumented: the calls on the message path and the
// ones every request or poll makes are timed (chatd_store_seconds{op}) and
// their failures counted (chatd_store_errors_total{op}); every group
// commit's size is observed (chatd_commit_batch_messages). Other calls
// (account and course administration) go straight to s. With a nil m it
// returns s.
//
// The wrapper hides any method s has beyond chat.Store; serve uses none.
func (m *Metrics) Store(s chat.Store) chat.Store {
	if m == nil {
		return s
	}
	st := &store{Store: s, m: m, ops: make(map[string]storeOp, len(storeOps))}
	for _, op := range storeOps {
		st.ops[op] = storeOp{seconds: m.storeSeconds.WithLabelValues(op), errors: m.storeErrors.WithLabelValues(op)}
	}
	return st
}

type store struct {
	chat.Store
	m   *Metrics
	ops map[string]storeOp // read only after Store returns
}

// storeOp is one operation's series, looked up once.
type storeOp struct {
	seconds prometheus.Observer
	errors  prometheus.Counter
}

// done records a call of op that started at start and ended with err.
func (s *store) done(op string, start time.Time, err error) {
	o := s.ops[op]
	o.seconds.Observe(time.Since(start).Seconds())
	if storeFault(err) {
		o.errors.Inc()
	}
}

// storeFault reports whether err is the store's own failure rather than an
// answer (not found, invalid, conflict) or a caller that gave up.
func storeFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch chat.ErrorCode(err) {
	case chat.EINVALID, chat.ENOTFOUND, chat.ECONFLICT, chat.EFORBIDDEN, chat.EUNAUTHORIZED:
		return false
	}
	return true
}

func (s *store) AppendMessages(ctx context.Context, msgs []*chat.Message) error {
	start := time.Now()
	err := s.Store.AppendMessages(ctx, msgs)
	s.done(opAppend, start, err)
	s.m.batchSize.Observe(float64(len(msgs)))
	return err
}

func (s *store) Messages(ctx context.Context, room string, q chat.MessageQuery) ([]*chat.Message, error) {
	start := time.Now()
	msgs, err := s.Store.Messages(ctx, room, q)
	s.done(opMessages, start, err)
	return msgs, err
}

func (s *store) RoomSeq(ctx context.Context, room string) (first, last int64, err error) {
	start := time.Now()
	first, last, err = s.Store.RoomSeq(ctx, room)
	s.done(opRoomSeq, start, err)
	return first, last, err
}

func (s *store) SessionUser(ctx context.Context, token string) (*chat.User, *chat.Session, error) {
	start := time.Now()
	u, sess, err := s.Store.SessionUser(ctx, token)
	s.done(opSession, start, err)
	return u, sess, err
}

func (s *store) Revocations(ctx context.Context, after int64, limit int) ([]chat.Revocation, error) {
	start := time.Now()
	rs, err := s.Store.Revocations(ctx, after, limit)
	s.done(opRevocations, start, err)
	return rs, err
}

func (s *store) PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error) {
	start := time.Now()
	n, err := s.Store.PruneMessages(ctx, olderThan, maxPerRoom)
	s.done(opPrune, start, err)
	return n, err
}
