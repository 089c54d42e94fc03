package sqlite

import (
	"context"
	"fmt"
	"strconv"

	chat "github.com/chatd/chat"
)

// rekeyUsernames keeps every account's username_key equal to
// chat.UsernameKey of its username, which a newer chatd may define
// differently (look-alike usernames): it reads every account and writes the
// keys chat.RekeyUsernames says are out of date, in one write transaction.
// If two accounts now share a key it fails with a message naming them, and
// Open with it: chatd must not start with two accounts that answer to one
// name.
func (s *Store) rekeyUsernames(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE: no account is added meanwhile
	if err != nil {
		return fmt.Errorf("sqlite: rekey usernames: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, username, username_key FROM users ORDER BY id`)
	if err != nil {
		return fmt.Errorf("sqlite: rekey usernames: %w", err)
	}
	var all []chat.UsernameRow
	for rows.Next() {
		var r chat.UsernameRow
		if err := rows.Scan(&r.ID, &r.Username, &r.Key); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: rekey usernames: %w", err)
		}
		all = append(all, r)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: rekey usernames: %w", err)
	}
	changed, err := chat.RekeyUsernames(all)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %s", s.path, chat.ErrorMessage(err))
	}
	if len(changed) == 0 {
		return nil
	}
	// First a placeholder no key can equal (keys have no spaces), then the
	// new key: a new key may be another changed account's old one, and the
	// unique index is checked after every statement.
	for _, r := range changed {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET username_key = ? WHERE id = ?`, " rekey "+strconv.FormatInt(r.ID, 10), r.ID); err != nil {
			return fmt.Errorf("sqlite: rekey usernames: %w", err)
		}
	}
	for _, r := range changed {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET username_key = ? WHERE id = ?`, r.Key, r.ID); err != nil {
			return fmt.Errorf("sqlite: rekey usernames: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: rekey usernames: %w", err)
	}
	return nil
}
