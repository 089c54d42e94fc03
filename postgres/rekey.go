package postgres

import (
	"context"
	"fmt"
	"strconv"

	chat "github.com/chatd/chat"
	"github.com/jackc/pgx/v5"
)

// rekeyUsernames keeps every account's username_key equal to
// chat.UsernameKey of its username, which a newer chatd may define
// differently (look-alike usernames): it reads every account and writes the
// keys chat.RekeyUsernames says are out of date, in one transaction under
// the migrations' advisory lock, so chatd processes that start together take
// turns. If two accounts now share a key it fails with a message naming
// them, and Open with it: chatd must not start with two accounts that answer
// to one name.
func (s *Store) rekeyUsernames(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: rekey usernames: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLock); err != nil {
		return fmt.Errorf("postgres: rekey usernames: lock: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT id, username, username_key FROM users ORDER BY id`)
	if err != nil {
		return fmt.Errorf("postgres: rekey usernames: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.UsernameRow, error) {
		var r chat.UsernameRow
		err := row.Scan(&r.ID, &r.Username, &r.Key)
		return r, err
	})
	if err != nil {
		return fmt.Errorf("postgres: rekey usernames: %w", err)
	}
	changed, err := chat.RekeyUsernames(all)
	if err != nil {
		return fmt.Errorf("postgres: %s", chat.ErrorMessage(err))
	}
	if len(changed) == 0 {
		return nil
	}
	// First a placeholder no key can equal (keys have no spaces), then the
	// new key: a new key may be another changed account's old one.
	for _, r := range changed {
		if _, err := tx.Exec(ctx, `UPDATE users SET username_key = $1 WHERE id = $2`, " rekey "+strconv.FormatInt(r.ID, 10), r.ID); err != nil {
			return fmt.Errorf("postgres: rekey usernames: %w", err)
		}
	}
	for _, r := range changed {
		if _, err := tx.Exec(ctx, `UPDATE users SET username_key = $1 WHERE id = $2`, r.Key, r.ID); err != nil {
			return fmt.Errorf("postgres: rekey usernames: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: rekey usernames: %w", err)
	}
	return nil
}
