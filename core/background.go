package core

import (
	"context"
	"time"

	chat "github.com/chatd/chat"
)

// Retention is the history retention policy (HISTORY_MAX_AGE,
// HISTORY_MAX_PER_ROOM); zero fields mean no limit.
type Retention struct {
	MaxAge     time.Duration
	MaxPerRoom int
}

// RunRetention enforces r every interval until ctx ends. A room's sequence
// is never reset by it: a client resuming from a removed seq is told where
// history now starts (see ws). before, if not nil, is called with each
// prune's cutoff just before it, so in-memory copies of history (the hub's
// windows) can drop what the store is about to delete.
func (n *Node) RunRetention(ctx context.Context, r Retention, interval time.Duration, before func(olderThan time.Time, maxPerRoom int)) {
	if n.store == nil || (r.MaxAge <= 0 && r.MaxPerRoom <= 0) {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var cutoff time.Time
		if r.MaxAge > 0 {
			cutoff = n.cfg.Now().Add(-r.MaxAge)
		}
		if before != nil {
			before(cutoff, r.MaxPerRoom)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		k, err := n.store.PruneMessages(pctx, cutoff, r.MaxPerRoom)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			n.log.Warn("core: history retention failed; will retry", "err", err)
		case k > 0:
			n.log.Info("core: history retention removed old messages", "messages", k)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// revocationLookback is how many versions before the newest one seen are
// read again on every poll. On PostgreSQL a revocation's version is taken
// when its transaction inserts it, so a slow transaction can commit a
// lower version after a higher one was already read; reading back a little
// and remembering which versions were applied catches it exactly once.
const revocationLookback = 256

// WatchRevocations polls the store every interval for revocations recorded
// by any process (logout, unenroll, deleted accounts and courses, admin
// commands) and calls apply once for each, in order, until ctx ends. This
// is how access is taken away on every process within about an interval,
// whatever the channel layer's state, without a store query per message.
// Revocations recorded before the call are not applied.
func (n *Node) WatchRevocations(ctx context.Context, interval time.Duration, apply func(chat.Revocation)) {
	st := n.cfg.Store
	if st == nil {
		return
	}
	applied := make(map[int64]bool)
	var cursor int64 // newest version seen
	started := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !started {
			v, err := st.RevocationVersion(ctx)
			if err == nil {
				cursor, started = v, true
				// Everything up to v happened before this process: mark
				// the look-back range as applied.
				old, err := st.Revocations(ctx, max(0, v-revocationLookback), revocationLookback)
				if err == nil {
					for _, r := range old {
						applied[r.Version] = true
					}
				} else {
					started = false
				}
			}
			if err != nil && ctx.Err() == nil {
				n.log.Warn("core: cannot read revocations; will retry", "err", err)
			}
		} else {
			n.pollRevocations(ctx, st, &cursor, applied, apply)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) pollRevocations(ctx context.Context, st chat.Store, cursor *int64, applied map[int64]bool, apply func(chat.Revocation)) {
	after := max(0, *cursor-revocationLookback)
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rs, err := st.Revocations(pctx, after, 500)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("core: cannot read revocations; will retry", "err", err)
			}
			return
		}
		for _, r := range rs {
			if !applied[r.Version] {
				applied[r.Version] = true
				apply(r)
			}
			*cursor = max(*cursor, r.Version)
			after = r.Version
		}
		if len(rs) < 500 {
			break
		}
	}
	// Forget what can no longer be read back.
	for v := range applied {
		if v <= *cursor-2*revocationLookback {
			delete(applied, v)
		}
	}
}
