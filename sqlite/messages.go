package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/msgbatch"
)

// Messages.

// AppendMessages implements chat.Store. The batch is one IMMEDIATE
// transaction on the single writer connection: it holds SQLite's write lock
// from its first statement, so no other writer, in this process or another,
// can number messages at the same time, and the numbers have no gap. Per
// room it reads the counter, looks up the batch's client ids with one query,
// then inserts the new messages through a prepared statement and writes the
// counter back.
func (s *Store) AppendMessages(ctx context.Context, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	b, err := msgbatch.New(msgs)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append messages: %w", err)
	}
	defer tx.Rollback()
	for _, r := range b.Rooms {
		// A no-op update on conflict lets RETURNING give the existing row.
		if err := tx.QueryRowContext(ctx, `INSERT INTO rooms (key, last_seq) VALUES (?, 0)
			ON CONFLICT (key) DO UPDATE SET last_seq = last_seq RETURNING last_seq`, r.Key).Scan(&r.Last); err != nil {
			return fmt.Errorf("sqlite: append messages: room %q: %w", r.Key, err)
		}
	}
	for _, r := range b.Rooms {
		if err := lookupDuplicates(ctx, tx, r); err != nil {
			return err
		}
	}
	rows := b.Plan()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO messages
		(room, seq, sender_key, user_id, username, display_name, client_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: append messages: %w", err)
	}
	defer ins.Close()
	for _, row := range rows {
		m := row.Msg
		if _, err := ins.ExecContext(ctx, m.Room, row.Seq, row.SenderKey, m.UserID, m.User, m.Name, m.ClientID, m.Text,
			row.Time.UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: append messages: insert: %w", err)
		}
	}
	for _, r := range b.Rooms {
		if r.Next == r.Last {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rooms SET last_seq = ? WHERE key = ?`, r.Next, r.Key); err != nil {
			return fmt.Errorf("sqlite: append messages: room %q: %w", r.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append messages: %w", err)
	}
	b.Apply()
	return nil
}

// lookupDuplicates reports to r the messages of r.Lookup that are already
// stored, with one query: the pairs travel as a JSON array of
// [sender_key, client_id] pairs. CROSS JOIN makes SQLite loop over the
// pairs and probe the partial unique index for each (the query repeats the
// index's condition on client_id so that SQLite may use it), instead of
// scanning the room.
func lookupDuplicates(ctx context.Context, tx *sql.Tx, r *msgbatch.Room) error {
	if len(r.Lookup) == 0 {
		return nil
	}
	pairs := make([][2]string, len(r.Lookup))
	for i, k := range r.Lookup {
		pairs[i] = [2]string{k.Sender, k.ClientID}
	}
	arg, err := json.Marshal(pairs)
	if err != nil {
		return fmt.Errorf("sqlite: append messages: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT m.sender_key, m.client_id, m.seq, m.created_at, m.body
		FROM json_each(?1) j CROSS JOIN messages m
		  ON m.room = ?2 AND m.sender_key = j.value ->> 0 AND m.client_id = j.value ->> 1
		WHERE m.client_id <> ''`, string(arg), r.Key)
	if err != nil {
		return fmt.Errorf("sqlite: append messages: look up client ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k msgbatch.Key
		var st msgbatch.Stored
		var created int64
		if err := rows.Scan(&k.Sender, &k.ClientID, &st.Seq, &created, &st.Text); err != nil {
			return fmt.Errorf("sqlite: append messages: look up client ids: %w", err)
		}
		st.Time = fromMicros(created)
		r.Found(k, st)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: append messages: look up client ids: %w", err)
	}
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
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, username, display_name, client_id, body, created_at
		FROM messages WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq `+order+` LIMIT ?`,
		room, q.After, before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages: %w", err)
	}
	defer rows.Close()
	msgs := []*chat.Message{}
	for rows.Next() {
		m := &chat.Message{Room: room}
		var created int64
		if err := rows.Scan(&m.Seq, &m.UserID, &m.User, &m.Name, &m.ClientID, &m.Text, &created); err != nil {
			return nil, fmt.Errorf("sqlite: messages: %w", err)
		}
		m.Time = fromMicros(created)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: messages: %w", err)
	}
	if q.Newest {
		slices.Reverse(msgs)
	}
	return msgs, nil
}

// RoomSeq implements chat.Store.
func (s *Store) RoomSeq(ctx context.Context, room string) (first, last int64, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM messages WHERE room = r.key ORDER BY seq LIMIT 1), 0), r.last_seq
		FROM rooms r WHERE r.key = ?`, room).Scan(&first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("sqlite: room seq: %w", err)
	}
	return first, last, nil
}

// PruneMessages implements chat.Store. In each room it computes the lowest
// sequence number to keep and deletes the messages below it. By age that is
// the first message, in seq order, created at or after olderThan: the scan
// walks the (room, seq) key from the old end and stops there, so it reads
// little more than it deletes. By count it is last_seq - maxPerRoom + 1,
// which counts the newest messages because a room's stored messages have no
// hole. The CTE is materialised and CROSS JOIN keeps rooms as the outer
// loop, so each room costs one index range scan.
func (s *Store) PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error) {
	if olderThan.IsZero() && maxPerRoom <= 0 {
		return 0, nil
	}
	byAge, cutoff := 0, int64(0)
	if !olderThan.IsZero() {
		byAge, cutoff = 1, olderThan.UnixMicro()
	}
	res, err := s.db.ExecContext(ctx, `WITH keep AS MATERIALIZED (
		SELECT r.key, max(
			CASE WHEN ?1 THEN coalesce((SELECT m.seq FROM messages m
				WHERE m.room = r.key AND m.created_at >= ?2 ORDER BY m.seq LIMIT 1), r.last_seq + 1)
			ELSE 0 END,
			CASE WHEN ?3 > 0 THEN r.last_seq - ?3 + 1 ELSE 0 END) AS seq
		FROM rooms r)
		DELETE FROM messages WHERE rowid IN (
			SELECT m.rowid FROM keep CROSS JOIN messages m ON m.room = keep.key AND m.seq < keep.seq)`,
		byAge, cutoff, maxPerRoom)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune messages: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune messages: %w", err)
	}
	return n, nil
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

// revoke records r in tx. Versions follow commit order because SQLite has
// one writer at a time.
func revoke(ctx context.Context, tx *sql.Tx, r chat.Revocation) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO revocations (user_id, session_id, course_id, reason, created_at)
		VALUES (?, ?, ?, ?, ?)`, r.UserID, r.SessionID, r.CourseID, r.Reason, now().UnixMicro())
	return err
}

// Revocations implements chat.Store.
func (s *Store) Revocations(ctx context.Context, after int64, limit int) ([]chat.Revocation, error) {
	if limit < 1 {
		return nil, chat.Errorf(chat.EINVALID, "revocation limit must be at least 1")
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT version, user_id, session_id, course_id, reason, created_at
		FROM revocations WHERE version > ? ORDER BY version LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revocations: %w", err)
	}
	defer rows.Close()
	revs := []chat.Revocation{}
	for rows.Next() {
		var r chat.Revocation
		var created int64
		if err := rows.Scan(&r.Version, &r.UserID, &r.SessionID, &r.CourseID, &r.Reason, &created); err != nil {
			return nil, fmt.Errorf("sqlite: revocations: %w", err)
		}
		r.Time = fromMicros(created)
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: revocations: %w", err)
	}
	return revs, nil
}

// RevocationVersion implements chat.Store.
func (s *Store) RevocationVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM revocations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: revocation version: %w", err)
	}
	return v, nil
}

// PruneRevocations implements chat.Store.
func (s *Store) PruneRevocations(ctx context.Context, olderThan time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM revocations
		WHERE created_at < ? AND version < (SELECT max(version) FROM revocations)`, olderThan.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune revocations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune revocations: %w", err)
	}
	return n, nil
}

// Deployment.

// DeploymentID implements chat.Store. The first call makes the id and
// inserts it unless one is there already; every call then reads the one
// stored, so concurrent first calls, in any process, agree.
func (s *Store) DeploymentID(ctx context.Context) (string, error) {
	var id string
	err := s.rdb.QueryRowContext(ctx, `SELECT deployment_id FROM deployment WHERE id = 1`).Scan(&id)
	if err == nil {
		return id, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: deployment id: %w", err)
	}
	fresh, err := newDeploymentID()
	if err != nil {
		return "", err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO deployment (id, deployment_id) VALUES (1, ?)
		ON CONFLICT (id) DO NOTHING`, fresh); err != nil {
		return "", fmt.Errorf("sqlite: deployment id: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT deployment_id FROM deployment WHERE id = 1`).Scan(&id); err != nil {
		return "", fmt.Errorf("sqlite: deployment id: %w", err)
	}
	return id, nil
}

// newDeploymentID returns 16 random bytes in hex.
func newDeploymentID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sqlite: deployment id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
