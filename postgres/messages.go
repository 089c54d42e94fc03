package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/msgbatch"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Messages.

// AppendMessages implements chat.Store in one READ COMMITTED transaction
// and three round trips:
//
//  1. BEGIN; for each room in key order, an upsert of its rooms row that
//     returns last_seq and holds the row lock until commit (a concurrent
//     append to the room, from this process or another, waits here until
//     the holder commits, and then reads the counter the holder wrote);
//     then, per room, one query for the batch's client ids. Each statement
//     sees what committed before it started, so the look-ups, which run
//     after every lock is held, see every message stored under them.
//  2. One multi-row INSERT of the new messages (unnest of arrays) and an
//     UPDATE of each room's counter.
//  3. COMMIT.
//
// Locking rooms in one global order means that two batches sharing rooms
// never wait for each other in a cycle.
func (s *Store) AppendMessages(ctx context.Context, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	b, err := msgbatch.New(msgs)
	if err != nil {
		return err
	}
	var lock pgx.Batch
	lock.BeginTx(pgx.TxOptions{})
	for _, r := range b.Rooms {
		// The no-op update takes the row lock and makes RETURNING give the
		// latest committed counter even when the row already exists.
		lock.Queue(`INSERT INTO rooms (key) VALUES ($1)
			ON CONFLICT (key) DO UPDATE SET last_seq = rooms.last_seq RETURNING last_seq`, r.Key).
			QueryRow(func(row pgx.Row) error { return row.Scan(&r.Last) })
	}
	for _, r := range b.Rooms {
		if len(r.Lookup) == 0 {
			continue
		}
		senders, ids := make([]string, len(r.Lookup)), make([]string, len(r.Lookup))
		for i, k := range r.Lookup {
			senders[i], ids[i] = k.Sender, k.ClientID
		}
		// LATERAL with LIMIT (which keeps the planner from flattening it
		// into a join) makes the plan a loop over the pairs with one probe
		// of the partial unique index each (client_id <> '' lets the
		// planner use it). A plain join may be planned as a hash join over
		// all the room's messages, which grows with the room.
		lock.Queue(`SELECT k.sender_key, k.client_id, m.seq, m.created_at, m.body
			FROM unnest($2::text[], $3::text[]) AS k (sender_key, client_id)
			CROSS JOIN LATERAL (SELECT seq, created_at, body FROM messages
				WHERE room = $1 AND sender_key = k.sender_key AND client_id = k.client_id AND client_id <> '' LIMIT 1) m`,
			r.Key, senders, ids).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var k msgbatch.Key
					var st msgbatch.Stored
					if err := rows.Scan(&k.Sender, &k.ClientID, &st.Seq, &st.Time, &st.Text); err != nil {
						return err
					}
					r.Found(k, st)
				}
				return rows.Err()
			})
	}
	br := s.pool.SendBatch(ctx, &lock)
	tx := br.Tx()
	defer tx.Rollback(ctx)
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: append messages: %w", err)
	}

	rows := b.Plan()
	if len(rows) > 0 {
		n := len(rows)
		var (
			room, sender, user, clientID, body = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			name                               = make([]string, n)
			seq, userID                        = make([]int64, n), make([]int64, n)
			created                            = make([]time.Time, n)
		)
		for i, row := range rows {
			m := row.Msg
			room[i], seq[i], sender[i], userID[i] = m.Room, row.Seq, row.SenderKey, m.UserID
			user[i], clientID[i], body[i], created[i] = m.User, m.ClientID, m.Text, row.Time
			name[i] = m.Name
		}
		var write pgx.Batch
		write.Queue(`INSERT INTO messages (room, seq, sender_key, user_id, username, client_id, body, created_at, display_name)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[])`,
			room, seq, sender, userID, user, clientID, body, created, name)
		for _, r := range b.Rooms {
			if r.Next != r.Last {
				write.Queue(`UPDATE rooms SET last_seq = $2 WHERE key = $1`, r.Key, r.Next)
			}
		}
		if err := tx.SendBatch(ctx, &write).Close(); err != nil {
			return fmt.Errorf("postgres: append messages: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: append messages: %w", err)
	}
	b.Apply()
	return nil
}

// Messages implements chat.Store.
func (s *Store) Messages(ctx context.Context, room string, q chat.MessageQuery) ([]*chat.Message, error) {
	if q.Limit < 1 || q.Limit > chat.MaxMessagesQuery {
		return nil, chat.Errorf(chat.EINVALID, "message limit must be between 1 and %d", chat.MaxMessagesQuery)
	}
	before := int64(math.MaxInt64)
	if q.Before > 0 {
		before = q.Before
	}
	order := "ASC"
	if q.Newest {
		order = "DESC"
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, user_id, username, display_name, client_id, body, created_at
		FROM messages WHERE room = $1 AND seq > $2 AND seq < $3 ORDER BY seq `+order+` LIMIT $4`,
		room, q.After, before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*chat.Message, error) {
		m := &chat.Message{Room: room}
		err := row.Scan(&m.Seq, &m.UserID, &m.User, &m.Name, &m.ClientID, &m.Text, &m.Time)
		m.Time = m.Time.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: messages: %w", err)
	}
	if msgs == nil {
		msgs = []*chat.Message{}
	}
	if q.Newest {
		slices.Reverse(msgs)
	}
	return msgs, nil
}

// RoomSeq implements chat.Store.
func (s *Store) RoomSeq(ctx context.Context, room string) (first, last int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce((SELECT seq FROM messages WHERE room = r.key ORDER BY seq LIMIT 1), 0), r.last_seq
		FROM rooms r WHERE r.key = $1`, room).Scan(&first, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("postgres: room seq: %w", err)
	}
	return first, last, nil
}

// PruneMessages implements chat.Store. A first query computes, for each
// room with something to delete, the lowest sequence number to keep. By age
// that is the first message, in seq order, created at or after olderThan
// (an index scan of the room's primary key from the old end that stops
// there); by count it is last_seq - maxPerRoom + 1, which counts the newest
// messages because a room's stored messages have no hole. Then one DELETE
// per such room, pipelined, removes the messages below it: a range of the
// primary key, which the planner cannot mistake for a table scan as it may
// a join over every room. No room lock is needed: appends only add messages
// above what is deleted, and each DELETE removes a prefix on its own.
func (s *Store) PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error) {
	if olderThan.IsZero() && maxPerRoom <= 0 {
		return 0, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key, keep FROM (
		SELECT r.key,
			(SELECT m.seq FROM messages m WHERE m.room = r.key ORDER BY m.seq LIMIT 1) AS first,
			greatest(
				CASE WHEN $1::boolean THEN coalesce((SELECT m.seq FROM messages m
					WHERE m.room = r.key AND m.created_at >= $2::timestamptz ORDER BY m.seq LIMIT 1), r.last_seq + 1)
				ELSE 0 END,
				CASE WHEN $3::bigint > 0 THEN r.last_seq - $3::bigint + 1 ELSE 0 END) AS keep
		FROM rooms r) k
		WHERE first < keep`,
		!olderThan.IsZero(), olderThan, int64(maxPerRoom))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune messages: %w", err)
	}
	type cut struct {
		room string
		keep int64
	}
	cuts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cut, error) {
		var c cut
		err := row.Scan(&c.room, &c.keep)
		return c, err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: prune messages: %w", err)
	}
	var deleted int64
	for chunk := range slices.Chunk(cuts, 500) {
		var b pgx.Batch
		for _, c := range chunk {
			b.Queue(`DELETE FROM messages WHERE room = $1 AND seq < $2`, c.room, c.keep).
				Exec(func(tag pgconn.CommandTag) error { deleted += tag.RowsAffected(); return nil })
		}
		if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
			return deleted, fmt.Errorf("postgres: prune messages: %w", err)
		}
	}
	return deleted, nil
}

// Revocations.

// The reasons recorded with revocations, shown to users as close reasons.
const (
	reasonLoggedOut      = "logged out"
	reasonSignedOutAll   = "signed out everywhere"
	reasonAccountDeleted = "account deleted"
	reasonNotEnrolled    = "no longer enrolled"
	reasonCourseDeleted  = "course deleted"
	reasonDeactivated    = "account deactivated"
)

// revoke records r in tx, as the transaction's last step. It first locks
// the revocations table against other writers (SHARE ROW EXCLUSIVE; readers
// do not wait) until commit, so that versions are drawn in commit order: an
// identity value drawn earlier but committed later would slip under a
// version that pollers have already passed. Every transaction takes this
// lock after all its other locks, so the wait can never be part of a cycle.
//
// The LOCK must complete before the INSERT is even parsed: parsing the
// INSERT takes ROW EXCLUSIVE on the table, and two transactions each
// holding that while asking for SHARE ROW EXCLUSIVE deadlock. So the two
// statements are not pipelined in one batch (pgx prepares every statement
// of a batch before running the first).
func revoke(ctx context.Context, tx pgx.Tx, r chat.Revocation) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO revocations (user_id, session_id, course_id, reason, created_at)
		VALUES ($1, $2, $3, $4, $5)`, r.UserID, r.SessionID, r.CourseID, r.Reason, now())
	return err
}

// Revocations implements chat.Store.
func (s *Store) Revocations(ctx context.Context, after int64, limit int) ([]chat.Revocation, error) {
	if limit < 1 {
		return nil, chat.Errorf(chat.EINVALID, "revocation limit must be at least 1")
	}
	rows, err := s.pool.Query(ctx, `SELECT version, user_id, session_id, course_id, reason, created_at
		FROM revocations WHERE version > $1 ORDER BY version LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: revocations: %w", err)
	}
	revs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Revocation, error) {
		var r chat.Revocation
		err := row.Scan(&r.Version, &r.UserID, &r.SessionID, &r.CourseID, &r.Reason, &r.Time)
		r.Time = r.Time.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: revocations: %w", err)
	}
	if revs == nil {
		revs = []chat.Revocation{}
	}
	return revs, nil
}

// RevocationVersion implements chat.Store.
func (s *Store) RevocationVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM revocations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: revocation version: %w", err)
	}
	return v, nil
}

// PruneRevocations implements chat.Store.
func (s *Store) PruneRevocations(ctx context.Context, olderThan time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM revocations
		WHERE created_at < $1 AND version < (SELECT max(version) FROM revocations)`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune revocations: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Deployment.

// DeploymentID implements chat.Store. The first call makes the id and
// inserts it unless one is there already (a concurrent inserter makes the
// insert wait for its commit, then do nothing); every call then reads the
// one stored, so concurrent first calls, in any process, agree.
func (s *Store) DeploymentID(ctx context.Context) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT deployment_id FROM deployment WHERE id = 1`).Scan(&id)
	if err == nil {
		return id, nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: deployment id: %w", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("postgres: deployment id: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO deployment (id, deployment_id) VALUES (1, $1)
		ON CONFLICT (id) DO NOTHING`, hex.EncodeToString(b[:])); err != nil {
		return "", fmt.Errorf("postgres: deployment id: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT deployment_id FROM deployment WHERE id = 1`).Scan(&id); err != nil {
		return "", fmt.Errorf("postgres: deployment id: %w", err)
	}
	return id, nil
}
