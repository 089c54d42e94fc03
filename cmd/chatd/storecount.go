package main

import (
	"context"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
)

// countingStore counts the calls of every chat.Store method, for
// benchmarks and profiles: /debug/vars on DEBUG_ADDR shows them as
// "store_calls" (a reconnect storm's database queries, group commits, the
// access checks of signed-in sockets). Each call is one atomic add; the
// store itself is untouched. chatd wraps its store in one only when
// DEBUG_ADDR is set.
type countingStore struct {
	chat.Store
	calls map[string]*atomic.Uint64 // by method name; built once, read-only after
}

// storeMethods are the methods of chat.Store that countingStore counts:
// all but Close. A test checks the list against the interface.
var storeMethods = []string{
	"CreateUser",
	"UserByID",
	"UserByUsername",
	"ListUsers",
	"UserPasswordHash",
	"SetPassword",
	"DeleteUser",
	"CreateSession",
	"SessionUser",
	"DeleteSession",
	"DeleteUserSessions",
	"DeleteExpiredSessions",
	"CreateCourse",
	"CourseByID",
	"ListCourses",
	"CoursesForUser",
	"DeleteCourse",
	"Enroll",
	"Unenroll",
	"CourseMembers",
	"CanEnterCourse",
	"AppendMessages",
	"Messages",
	"RoomSeq",
	"PruneMessages",
	"Revocations",
	"RevocationVersion",
	"PruneRevocations",
	"DeploymentID",
	"APIKeyBySecret",
	"CreateAPIKey",
	"ListAPIKeys",
	"ListUsersPage",
	"MarkRead",
	"RenameCourse",
	"RevokeAPIKey",
	"RoomReads",
	"SetDisplayName",
	"SetUserActive",
	"SetUserAdmin",
}

func newCountingStore(st chat.Store) *countingStore {
	s := &countingStore{Store: st, calls: make(map[string]*atomic.Uint64, len(storeMethods))}
	for _, m := range storeMethods {
		s.calls[m] = new(atomic.Uint64)
	}
	return s
}

func (s *countingStore) count(method string) { s.calls[method].Add(1) }

// Calls returns the calls so far by method, and their total under "total".
func (s *countingStore) Calls() map[string]uint64 {
	out := make(map[string]uint64, len(s.calls)+1)
	var total uint64
	for m, n := range s.calls {
		v := n.Load()
		out[m] = v
		total += v
	}
	out["total"] = total
	return out
}

func (s *countingStore) CreateUser(ctx context.Context, u *chat.User, passwordHash string) error {
	s.count("CreateUser")
	return s.Store.CreateUser(ctx, u, passwordHash)
}

func (s *countingStore) UserByID(ctx context.Context, id int64) (*chat.User, error) {
	s.count("UserByID")
	return s.Store.UserByID(ctx, id)
}

func (s *countingStore) UserByUsername(ctx context.Context, username string) (*chat.User, error) {
	s.count("UserByUsername")
	return s.Store.UserByUsername(ctx, username)
}

func (s *countingStore) ListUsers(ctx context.Context) ([]*chat.User, error) {
	s.count("ListUsers")
	return s.Store.ListUsers(ctx)
}

func (s *countingStore) UserPasswordHash(ctx context.Context, username string) (*chat.User, string, error) {
	s.count("UserPasswordHash")
	return s.Store.UserPasswordHash(ctx, username)
}

func (s *countingStore) SetPassword(ctx context.Context, userID int64, passwordHash string) error {
	s.count("SetPassword")
	return s.Store.SetPassword(ctx, userID, passwordHash)
}

func (s *countingStore) DeleteUser(ctx context.Context, id int64) error {
	s.count("DeleteUser")
	return s.Store.DeleteUser(ctx, id)
}

func (s *countingStore) CreateSession(ctx context.Context, userID int64, ttl time.Duration) (*chat.Session, error) {
	s.count("CreateSession")
	return s.Store.CreateSession(ctx, userID, ttl)
}

func (s *countingStore) SessionUser(ctx context.Context, token string) (*chat.User, *chat.Session, error) {
	s.count("SessionUser")
	return s.Store.SessionUser(ctx, token)
}

func (s *countingStore) DeleteSession(ctx context.Context, token string) error {
	s.count("DeleteSession")
	return s.Store.DeleteSession(ctx, token)
}

func (s *countingStore) DeleteUserSessions(ctx context.Context, userID int64) error {
	s.count("DeleteUserSessions")
	return s.Store.DeleteUserSessions(ctx, userID)
}

func (s *countingStore) DeleteExpiredSessions(ctx context.Context) (int, error) {
	s.count("DeleteExpiredSessions")
	return s.Store.DeleteExpiredSessions(ctx)
}

func (s *countingStore) CreateCourse(ctx context.Context, c *chat.Course) error {
	s.count("CreateCourse")
	return s.Store.CreateCourse(ctx, c)
}

func (s *countingStore) CourseByID(ctx context.Context, id int64) (*chat.Course, error) {
	s.count("CourseByID")
	return s.Store.CourseByID(ctx, id)
}

func (s *countingStore) ListCourses(ctx context.Context) ([]*chat.Course, error) {
	s.count("ListCourses")
	return s.Store.ListCourses(ctx)
}

func (s *countingStore) CoursesForUser(ctx context.Context, userID int64) ([]*chat.Course, error) {
	s.count("CoursesForUser")
	return s.Store.CoursesForUser(ctx, userID)
}

func (s *countingStore) DeleteCourse(ctx context.Context, id int64) error {
	s.count("DeleteCourse")
	return s.Store.DeleteCourse(ctx, id)
}

func (s *countingStore) Enroll(ctx context.Context, courseID, userID int64) error {
	s.count("Enroll")
	return s.Store.Enroll(ctx, courseID, userID)
}

func (s *countingStore) Unenroll(ctx context.Context, courseID, userID int64) error {
	s.count("Unenroll")
	return s.Store.Unenroll(ctx, courseID, userID)
}

func (s *countingStore) CourseMembers(ctx context.Context, courseID int64) ([]*chat.User, error) {
	s.count("CourseMembers")
	return s.Store.CourseMembers(ctx, courseID)
}

func (s *countingStore) CanEnterCourse(ctx context.Context, courseID, userID int64) (bool, error) {
	s.count("CanEnterCourse")
	return s.Store.CanEnterCourse(ctx, courseID, userID)
}

func (s *countingStore) AppendMessages(ctx context.Context, msgs []*chat.Message) error {
	s.count("AppendMessages")
	return s.Store.AppendMessages(ctx, msgs)
}

func (s *countingStore) Messages(ctx context.Context, room string, q chat.MessageQuery) ([]*chat.Message, error) {
	s.count("Messages")
	return s.Store.Messages(ctx, room, q)
}

func (s *countingStore) RoomSeq(ctx context.Context, room string) (int64, int64, error) {
	s.count("RoomSeq")
	return s.Store.RoomSeq(ctx, room)
}

func (s *countingStore) PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error) {
	s.count("PruneMessages")
	return s.Store.PruneMessages(ctx, olderThan, maxPerRoom)
}

func (s *countingStore) Revocations(ctx context.Context, after int64, limit int) ([]chat.Revocation, error) {
	s.count("Revocations")
	return s.Store.Revocations(ctx, after, limit)
}

func (s *countingStore) RevocationVersion(ctx context.Context) (int64, error) {
	s.count("RevocationVersion")
	return s.Store.RevocationVersion(ctx)
}

func (s *countingStore) PruneRevocations(ctx context.Context, olderThan time.Time) (int64, error) {
	s.count("PruneRevocations")
	return s.Store.PruneRevocations(ctx, olderThan)
}

func (s *countingStore) DeploymentID(ctx context.Context) (string, error) {
	s.count("DeploymentID")
	return s.Store.DeploymentID(ctx)
}

func (s *countingStore) APIKeyBySecret(ctx context.Context, secret string) (*chat.APIKey, error) {
	s.count("APIKeyBySecret")
	return s.Store.APIKeyBySecret(ctx, secret)
}

func (s *countingStore) CreateAPIKey(ctx context.Context, k *chat.APIKey) error {
	s.count("CreateAPIKey")
	return s.Store.CreateAPIKey(ctx, k)
}

func (s *countingStore) ListAPIKeys(ctx context.Context) ([]*chat.APIKey, error) {
	s.count("ListAPIKeys")
	return s.Store.ListAPIKeys(ctx)
}

func (s *countingStore) ListUsersPage(ctx context.Context, after string, limit int) ([]*chat.User, error) {
	s.count("ListUsersPage")
	return s.Store.ListUsersPage(ctx, after, limit)
}

func (s *countingStore) MarkRead(ctx context.Context, userID int64, room string, seq int64, at time.Time) error {
	s.count("MarkRead")
	return s.Store.MarkRead(ctx, userID, room, seq, at)
}

func (s *countingStore) RenameCourse(ctx context.Context, id int64, title string) error {
	s.count("RenameCourse")
	return s.Store.RenameCourse(ctx, id, title)
}

func (s *countingStore) RevokeAPIKey(ctx context.Context, id int64) error {
	s.count("RevokeAPIKey")
	return s.Store.RevokeAPIKey(ctx, id)
}

func (s *countingStore) RoomReads(ctx context.Context, userID int64, also []string) ([]chat.RoomRead, error) {
	s.count("RoomReads")
	return s.Store.RoomReads(ctx, userID, also)
}

func (s *countingStore) SetDisplayName(ctx context.Context, userID int64, name string) error {
	s.count("SetDisplayName")
	return s.Store.SetDisplayName(ctx, userID, name)
}

func (s *countingStore) SetUserActive(ctx context.Context, userID int64, active bool) error {
	s.count("SetUserActive")
	return s.Store.SetUserActive(ctx, userID, active)
}

func (s *countingStore) SetUserAdmin(ctx context.Context, userID int64, admin bool) error {
	s.count("SetUserAdmin")
	return s.Store.SetUserAdmin(ctx, userID, admin)
}
