package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	chat "github.com/chatd/chat"
)

// Display names and read positions (migration 0004).

// SetDisplayName implements chat.Store.
func (s *Store) SetDisplayName(ctx context.Context, userID int64, name string) error {
	name = strings.TrimSpace(name)
	if err := chat.ValidateDisplayName(name); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE users SET display_name = ? WHERE id = ?`, name, userID)
	if err != nil {
		return fmt.Errorf("sqlite: set display name: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set display name: %w", err)
	} else if n == 0 {
		return userNotFound(userID)
	}
	return nil
}

// MarkRead implements chat.Store with one upsert that keeps the higher seq.
func (s *Store) MarkRead(ctx context.Context, userID int64, room string, seq int64, at time.Time) error {
	if err := checkMarkRead(userID, room, seq); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO room_reads (user_id, room, last_seq, read_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq), read_at = excluded.read_at`,
		userID, room, seq, at.UnixMicro())
	if isForeignKey(err) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("sqlite: mark read: %w", err)
	}
	return nil
}

// checkMarkRead validates MarkRead's arguments, the same for both stores.
func checkMarkRead(userID int64, room string, seq int64) error {
	switch {
	case userID <= 0:
		return chat.Errorf(chat.EINVALID, "only accounts have read positions")
	case room == "":
		return chat.Errorf(chat.EINVALID, "room is required")
	case seq < 0:
		return chat.Errorf(chat.EINVALID, "seq must not be negative")
	}
	return nil
}

// dmPatterns returns the LIKE patterns of the keys of userID's private
// rooms, "dm:<id>:<id>" with the smaller id first: "dm:7:%" and "dm:%:7".
// Ids are digits, so neither pattern matches another user's rooms
// ("dm:%:7" does not match "dm:1:17").
func dmPatterns(userID int64) (string, string) {
	id := strconv.FormatInt(userID, 10)
	return "dm:" + id + ":%", "dm:%:" + id
}

// RoomReads implements chat.Store: the user's read rooms, their private
// rooms and also, then per room the counter, the newest message's time and
// the unread count (an index range on (room, seq) that stops at MaxUnread).
func (s *Store) RoomReads(ctx context.Context, userID int64, also []string) ([]chat.RoomRead, error) {
	var out []chat.RoomRead
	seen := map[string]bool{}
	rows, err := s.rdb.QueryContext(ctx, `SELECT room, last_seq, read_at FROM room_reads
		WHERE user_id = ? ORDER BY read_at DESC, room LIMIT ?`, userID, chat.MaxRoomReads)
	if err != nil {
		return nil, fmt.Errorf("sqlite: room reads: %w", err)
	}
	for rows.Next() {
		var r chat.RoomRead
		var at int64
		if err := rows.Scan(&r.Room, &r.LastRead, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: room reads: %w", err)
		}
		r.ReadAt = fromMicros(at)
		seen[r.Room] = true
		out = append(out, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: room reads: %w", err)
	}
	p1, p2 := dmPatterns(userID)
	rows, err = s.rdb.QueryContext(ctx, `SELECT key FROM rooms WHERE key LIKE ? OR key LIKE ? ORDER BY key LIMIT ?`,
		p1, p2, chat.MaxRoomReads)
	if err != nil {
		return nil, fmt.Errorf("sqlite: room reads: %w", err)
	}
	var more []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: room reads: %w", err)
		}
		more = append(more, k)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: room reads: %w", err)
	}
	out = appendUnseen(out, seen, more, also)
	for i := range out {
		r := &out[i]
		var lastAt sql.NullInt64
		err := s.rdb.QueryRowContext(ctx, `SELECT r.last_seq,
			(SELECT created_at FROM messages WHERE room = r.key AND seq = r.last_seq),
			(SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = r.key AND seq > ? AND user_id <> ? LIMIT ?))
			FROM rooms r WHERE r.key = ?`, r.LastRead, userID, chat.MaxUnread, r.Room).Scan(&r.LastSeq, &lastAt, &r.Unread)
		if errors.Is(err, sql.ErrNoRows) {
			continue // no message yet
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: room reads: %w", err)
		}
		if lastAt.Valid {
			r.LastAt = fromMicros(lastAt.Int64)
		}
	}
	return out, nil
}

// appendUnseen appends to out, once each and in key order, the rooms of
// lists that are not in seen.
func appendUnseen(out []chat.RoomRead, seen map[string]bool, lists ...[]string) []chat.RoomRead {
	var keys []string
	for _, l := range lists {
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
	return out
}
