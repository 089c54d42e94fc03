package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	chat "github.com/chatd/chat"
)

// API keys.

const apiKeyColumns = `id, name, prefix, bot, rooms, created_by, created_at, revoked_at`

func scanAPIKey(row scanner) (*chat.APIKey, error) {
	k := new(chat.APIKey)
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Bot, &k.Rooms, &k.CreatedBy, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMicros(created)
	if revoked.Valid {
		k.RevokedAt = fromMicros(revoked.Int64)
	}
	return k, nil
}

// CreateAPIKey implements chat.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k *chat.APIKey) error {
	if k == nil {
		return chat.Errorf(chat.EINVALID, "api key is required")
	}
	nk := *k
	if err := nk.Normalize(); err != nil {
		return err
	}
	secret, prefix, hash, err := chat.NewAPIKeySecret()
	if err != nil {
		return fmt.Errorf("sqlite: create api key: %w", err)
	}
	created := now()
	err = s.db.QueryRowContext(ctx, `INSERT INTO api_keys (name, secret_hash, prefix, bot, rooms, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		nk.Name, hash, prefix, nk.Bot, nk.Rooms, nk.CreatedBy, created.UnixMicro()).Scan(&nk.ID)
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "an API key named %q already exists (revoke it first)", nk.Name)
	} else if err != nil {
		return fmt.Errorf("sqlite: create api key: %w", err)
	}
	nk.Secret, nk.Prefix, nk.CreatedAt, nk.RevokedAt = secret, prefix, created, time.Time{}
	*k = nk
	return nil
}

// APIKeyBySecret implements chat.Store.
func (s *Store) APIKeyBySecret(ctx context.Context, secret string) (*chat.APIKey, error) {
	if secret == "" {
		return nil, chat.Errorf(chat.ENOTFOUND, "api key not found")
	}
	k, err := scanAPIKey(s.rdb.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE secret_hash = ? AND revoked_at IS NULL`, chat.HashAPIKey(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chat.Errorf(chat.ENOTFOUND, "api key not found or revoked")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements chat.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*chat.APIKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list api keys: %w", err)
	}
	defer rows.Close()
	keys := []*chat.APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey implements chat.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
		now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	} else if n == 0 {
		return chat.Errorf(chat.ENOTFOUND, "no valid API key with id %d", id)
	}
	return nil
}
