package postgres

import (
	"context"
	"errors"
	"time"

	chat "github.com/chatd/chat"
)

var errTODO = errors.New("postgres: not yet")

func (s *Store) AppendMessages(ctx context.Context, msgs []*chat.Message) error { return errTODO }
func (s *Store) Messages(ctx context.Context, room string, q chat.MessageQuery) ([]*chat.Message, error) {
	return nil, errTODO
}
func (s *Store) RoomSeq(ctx context.Context, room string) (int64, int64, error) { return 0, 0, errTODO }
func (s *Store) PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error) {
	return 0, errTODO
}
func (s *Store) Revocations(ctx context.Context, after int64, limit int) ([]chat.Revocation, error) {
	return nil, errTODO
}
func (s *Store) RevocationVersion(ctx context.Context) (int64, error) { return 0, errTODO }
func (s *Store) PruneRevocations(ctx context.Context, olderThan time.Time) (int64, error) {
	return 0, errTODO
}
func (s *Store) DeploymentID(ctx context.Context) (string, error) { return "", errTODO }
