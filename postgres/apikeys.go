package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	chat "github.com/chatd/chat"
	"github.com/jackc/pgx/v5"
)

// API keys.

const apiKeyColumns = `id, name, prefix, bot, rooms, created_by, created_at, revoked_at`

func scanAPIKey(row pgx.Row) (*chat.APIKey, error) {
	k := new(chat.APIKey)
	var revoked *time.Time
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Bot, &k.Rooms, &k.CreatedBy, &k.CreatedAt, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
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
		return fmt.Errorf("postgres: create api key: %w", err)
	}
	created := now()
	err = s.pool.QueryRow(ctx, `INSERT INTO api_keys (name, secret_hash, prefix, bot, rooms, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		nk.Name, hash, prefix, nk.Bot, nk.Rooms, nk.CreatedBy, created).Scan(&nk.ID)
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "an API key named %q already exists (revoke it first)", nk.Name)
	} else if err != nil {
		return fmt.Errorf("postgres: create api key: %w", err)
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
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE secret_hash = $1 AND revoked_at IS NULL`, chat.HashAPIKey(secret)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, chat.Errorf(chat.ENOTFOUND, "api key not found or revoked")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements chat.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*chat.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*chat.APIKey, error) { return scanAPIKey(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	if keys == nil {
		keys = []*chat.APIKey{}
	}
	return keys, nil
}

// RevokeAPIKey implements chat.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, now(), id)
	if err != nil {
		return fmt.Errorf("postgres: revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return chat.Errorf(chat.ENOTFOUND, "no valid API key with id %d", id)
	}
	return nil
}
