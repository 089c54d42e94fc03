package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	chat "github.com/chatd/chat"
	"github.com/jackc/pgx/v5"
)

// Display names and read positions (migration 0004).

// SetDisplayName implements chat.Store.
func (s *Store) SetDisplayName(ctx context.Context, userID int64, name string) error {
	name = strings.TrimSpace(name)
	if err := chat.ValidateDisplayName(name); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET display_name = $1 WHERE id = $2`, name, userID)
	if err != nil {
		return fmt.Errorf("postgres: set display name: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return userNotFound(userID)
	}
	return nil
}

// MarkRead implements chat.Store with one upsert that keeps the higher seq.
func (s *Store) MarkRead(ctx context.Context, userID int64, room string, seq int64, at time.Time) error {
	switch {
	case userID <= 0:
		return chat.Errorf(chat.EINVALID, "only accounts have read positions")
	case room == "":
		return chat.Errorf(chat.EINVALID, "room is required")
	case seq < 0:
		return chat.Errorf(chat.EINVALID, "seq must not be negative")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO room_reads (user_id, room, last_seq, read_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, room) DO UPDATE SET last_seq = greatest(room_reads.last_seq, excluded.last_seq), read_at = excluded.read_at`,
		userID, room, seq, at.UTC().Truncate(time.Microsecond))
	if isForeignKey(err) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("postgres: mark read: %w", err)
	}
	return nil
}

// RoomReads implements chat.Store: the user's read rooms, their private
// rooms (two LIKE patterns on the rooms' keys, "dm:<id>:%" and "dm:%:<id>";
// ids are digits, so "dm:%:7" never matches "dm:1:17") and also, then per
// room, pipelined in one batch, the counter, the newest message's time and
// the unread count (an index range on (room, seq) that stops at MaxUnread).
func (s *Store) RoomReads(ctx context.Context, userID int64, also []string) ([]chat.RoomRead, error) {
	rows, err := s.pool.Query(ctx, `SELECT room, last_seq, read_at FROM room_reads
		WHERE user_id = $1 ORDER BY read_at DESC, room COLLATE "C" LIMIT $2`, userID, chat.MaxRoomReads)
	if err != nil {
		return nil, fmt.Errorf("postgres: room reads: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.RoomRead, error) {
		var r chat.RoomRead
		err := row.Scan(&r.Room, &r.LastRead, &r.ReadAt)
		r.ReadAt = r.ReadAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: room reads: %w", err)
	}
	id := strconv.FormatInt(userID, 10)
	rows, err = s.pool.Query(ctx, `SELECT key FROM rooms WHERE key LIKE $1 OR key LIKE $2 ORDER BY key COLLATE "C" LIMIT $3`,
		"dm:"+id+":%", "dm:%:"+id, chat.MaxRoomReads)
	if err != nil {
		return nil, fmt.Errorf("postgres: room reads: %w", err)
	}
	dms, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: room reads: %w", err)
	}
	seen := make(map[string]bool, len(out))
	for _, r := range out {
		seen[r.Room] = true
	}
	var keys []string
	for _, l := range [][]string{dms, also} {
		for _, k := range l {
			if k != "" && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, chat.RoomRead{Room: k})
	}
	if len(out) == 0 {
		return out, nil
	}
	var b pgx.Batch
	for i := range out {
		r := &out[i]
		b.Queue(`SELECT r.last_seq,
			(SELECT created_at FROM messages WHERE room = r.key AND seq = r.last_seq),
			(SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = r.key AND seq > $1 AND user_id <> $2 LIMIT $3) u)
			FROM rooms r WHERE r.key = $4`, r.LastRead, userID, chat.MaxUnread, r.Room).
			QueryRow(func(row pgx.Row) error {
				var lastAt *time.Time
				err := row.Scan(&r.LastSeq, &lastAt, &r.Unread)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil // no message yet
				}
				if lastAt != nil {
					r.LastAt = lastAt.UTC()
				}
				return err
			})
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("postgres: room reads: %w", err)
	}
	return out, nil
}
