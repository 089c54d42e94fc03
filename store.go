package chat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on stored text, counted in characters (runes).
const (
	MaxUsernameLen    = 150 // as Django's auth.User.username
	MaxDisplayNameLen = 150
	MaxCourseTitleLen = 200
)

// Course is a class with a chat room that only its owner and its enrolled
// students may enter.
type Course struct {
	ID            int64
	Title         string
	OwnerID       int64
	OwnerUsername string // filled in by the store on reads and on CreateCourse
	CreatedAt     time.Time
}

// Session is a server-side login session. The store keeps only a SHA-256 hash
// of Token, so Token is known only to the caller of CreateSession (which puts
// it in a cookie); sessions read back from the store have an empty Token.
type Session struct {
	ID        int64  // not secret: names the session in logs and socket groups
	Token     string // the secret; set only on the value CreateSession returns
	UserID    int64
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store keeps accounts, sessions, courses, chat messages and access
// revocations. The sqlite and postgres packages implement it; storetest.Run
// checks that they behave the same.
//
// Every method is safe for concurrent use. Errors that a user can cause are
// *Error values: EINVALID for bad input, ENOTFOUND for a missing user, course
// or session, ECONFLICT for duplicates. Any other error (the database is
// unreachable, a bug) is internal and must not be shown to users.
//
// Times are UTC with microsecond precision, taken from the chatd process's
// clock, not the database's, so both implementations agree.
type Store interface {
	// CreateUser adds an account and sets u.ID. The username must pass
	// ValidateUsername and be unique regardless of case (ECONFLICT
	// otherwise); its spelling is kept as given. passwordHash is an encoded
	// hash from the password package and must not be empty. The account is
	// active (u.Deactivated is not stored; see SetUserActive).
	CreateUser(ctx context.Context, u *User, passwordHash string) error

	// UserByID returns the account with id, or ENOTFOUND.
	UserByID(ctx context.Context, id int64) (*User, error)

	// UserByUsername returns the account whose username matches username
	// regardless of case, or ENOTFOUND.
	UserByUsername(ctx context.Context, username string) (*User, error)

	// ListUsers returns every account ordered by username (compared case
	// insensitively, then by id).
	ListUsers(ctx context.Context) ([]*User, error)

	// ListUsersPage returns at most limit accounts in ListUsers order,
	// starting after the account whose username is after regardless of case
	// ("" starts at the first), so a list of any length is read a page at a
	// time without counting or skipping rows.
	ListUsersPage(ctx context.Context, after string, limit int) ([]*User, error)

	// UserPasswordHash returns the account matching username regardless of
	// case together with its password hash, or ENOTFOUND. Login uses it; when
	// the user does not exist the caller should still spend the time of a
	// verification (password.VerifyDummy).
	UserPasswordHash(ctx context.Context, username string) (*User, string, error)

	// SetPassword replaces the password hash of the account with userID
	// (ENOTFOUND if there is none). It does not end the user's sessions: call
	// DeleteUserSessions for that.
	SetPassword(ctx context.Context, userID int64, passwordHash string) error

	// SetUserActive deactivates (active false) or reactivates an account.
	// Deactivating ends every session of the user and records a
	// revocation (UserID, "account deactivated") in the same transaction,
	// so the user's sockets close on every process. A deactivated user
	// cannot sign in: SessionUser finds none of their sessions and
	// CreateSession fails with EFORBIDDEN; their messages, enrollments and
	// courses stay, and UserPasswordHash still finds them (with
	// Deactivated set) so that login can say why. Deactivating a
	// deactivated account, or reactivating an active one, changes and
	// records nothing. ENOTFOUND if there is no such user.
	SetUserActive(ctx context.Context, userID int64, active bool) error

	// SetUserAdmin grants (admin true) or takes away the administrator
	// flag (User.IsAdmin) of an account. ENOTFOUND if there is no such user.
	SetUserAdmin(ctx context.Context, userID int64, admin bool) error
	// SetDisplayName sets the display name of the account with userID,
	// trimmed of surrounding space; it must pass ValidateDisplayName (""
	// shows the username instead). ENOTFOUND if there is no such user.
	// Messages already written keep the name they were written under
	// (Message.Name).
	SetDisplayName(ctx context.Context, userID int64, name string) error

	// DeleteUser removes an account with its sessions and enrollments. It
	// fails with ECONFLICT while the user owns courses, and with ENOTFOUND if
	// there is no such user.
	DeleteUser(ctx context.Context, id int64) error

	// CreateSession starts a session for userID that lasts ttl (which must be
	// positive). It returns the session with its secret Token: 32 random bytes
	// in unpadded URL-safe base64. Only the token's SHA-256 hash is stored.
	// ENOTFOUND if the user does not exist, EFORBIDDEN if the account is
	// deactivated.
	CreateSession(ctx context.Context, userID int64, ttl time.Duration) (*Session, error)

	// SessionUser returns the session identified by token and its user. A
	// token that is unknown, deleted or expired, or whose user is
	// deactivated, gives ENOTFOUND. The returned session's Token is empty.
	SessionUser(ctx context.Context, token string) (*User, *Session, error)

	// DeleteSession ends the session identified by token. Ending a session
	// that does not exist (logging out twice) is not an error.
	DeleteSession(ctx context.Context, token string) error

	// DeleteUserSessions ends every session of userID ("log out everywhere").
	// A user without sessions, or no such user, is not an error.
	DeleteUserSessions(ctx context.Context, userID int64) error

	// DeleteExpiredSessions removes expired sessions and reports how many. The
	// server calls it from time to time; SessionUser never returns an expired
	// session either way.
	DeleteExpiredSessions(ctx context.Context) (int, error)

	// CreateCourse adds a course owned by c.OwnerID and sets c.ID,
	// c.CreatedAt and c.OwnerUsername. The title is trimmed of surrounding
	// space and must pass ValidateCourseTitle; titles need not be unique.
	// ENOTFOUND if the owner does not exist.
	CreateCourse(ctx context.Context, c *Course) error

	// RenameCourse sets the title of course id, trimmed of surrounding
	// space; it must pass ValidateCourseTitle. ENOTFOUND if there is no
	// such course.
	RenameCourse(ctx context.Context, id int64, title string) error

	// CourseByID returns the course with id, or ENOTFOUND.
	CourseByID(ctx context.Context, id int64) (*Course, error)

	// ListCourses returns every course ordered by id.
	ListCourses(ctx context.Context) ([]*Course, error)

	// CoursesForUser returns the courses userID owns or is enrolled in,
	// ordered by id. An unknown user has none.
	CoursesForUser(ctx context.Context, userID int64) ([]*Course, error)

	// DeleteCourse removes a course, its enrollments and its chat room (the
	// messages, the sequence counter and the read positions of
	// CourseRoomKey(id)).
	// ENOTFOUND if there is none.
	DeleteCourse(ctx context.Context, id int64) error

	// Enroll makes userID a student of courseID. ENOTFOUND if either does
	// not exist, ECONFLICT if the user is already enrolled or owns the
	// course (owning it already lets them in; an owner is not a student of
	// their own course).
	Enroll(ctx context.Context, courseID, userID int64) error

	// Unenroll removes userID from courseID's students, or returns ENOTFOUND
	// if they were not enrolled (or the course does not exist). Closing the
	// user's open sockets in the course room is the caller's job.
	Unenroll(ctx context.Context, courseID, userID int64) error

	// CourseMembers returns the students enrolled in courseID ordered by
	// username, not including the owner unless enrolled. ENOTFOUND if the
	// course does not exist.
	CourseMembers(ctx context.Context, courseID int64) ([]*User, error)

	// CanEnterCourse reports whether userID may enter courseID's chat room:
	// true for its owner and its enrolled students. ENOTFOUND if the course
	// does not exist; an unknown or guest user (id 0) simply may not enter.
	CanEnterCourse(ctx context.Context, courseID, userID int64) (bool, error)

	// AppendMessages stores msgs in one transaction (a group commit) and
	// sets each one's Seq: the next sequence number of its room, assigned
	// in the order of msgs, so a room's messages are numbered 1, 2, 3, ...
	// with no gap, also when several chatd processes append to one room at
	// once (the room's counter is locked for the transaction; a batch that
	// spans rooms locks them in key order so that batches never deadlock).
	// msgs may span rooms; every Room, User and Text must be non-empty,
	// Time set by the caller (it is stored as given, to the microsecond),
	// ClientID at most MaxClientIDLen bytes, and every string valid UTF-8
	// without NUL characters; otherwise the whole batch fails with EINVALID
	// before anything is written. A stored message gets its Seq,
	// Duplicate = false and its Time as stored (UTC, truncated to the
	// microsecond), so it equals what Messages returns later.
	//
	// Idempotency: a message whose ClientID is not empty and whose (Room,
	// SenderKey, ClientID) is already stored, or appears earlier in the
	// same batch, is not stored again; it gets Duplicate = true and the
	// stored message's Seq, Time and Text. Nothing else is modified. (A
	// message that retention has deleted is no longer found: a retry that
	// late is stored again, with a new Seq.)
	//
	// Either every message is stored (or found as a duplicate) or, on an
	// error, none is, and the messages' fields are left as they were.
	AppendMessages(ctx context.Context, msgs []*Message) error

	// Messages returns up to q.Limit stored messages of room with
	// q.After < Seq and, if q.Before > 0, Seq < q.Before, oldest first. If
	// q.Newest is set it returns the newest such messages (still oldest
	// first), otherwise the oldest. q.Limit must be between 1 and
	// MaxMessagesQuery (EINVALID otherwise). An unknown room has none (an
	// empty, non-nil slice). Duplicate is false in every returned message.
	Messages(ctx context.Context, room string, q MessageQuery) ([]*Message, error)

	// RoomSeq returns the last sequence number assigned in room (0 if none
	// was) and the lowest one still stored (0 if none is: retention may
	// have removed every message while last stays).
	RoomSeq(ctx context.Context, room string) (first, last int64, err error)

	// PruneMessages enforces retention: it deletes messages created before
	// olderThan (if not zero) and, in every room, all but the newest
	// maxPerRoom messages (if maxPerRoom > 0). It never resets a room's
	// sequence: the next message still gets last+1. It returns how many
	// messages it deleted.
	//
	// It deletes only from the old end of a room, so that a room's stored
	// messages are always exactly first..last (RoomSeq) with no hole: by
	// age, it deletes the messages numbered below the room's first message
	// created at or after olderThan. When the clocks of several chatd
	// processes disagree a little, an old message that follows a newer one
	// therefore stays until the newer one is old too.
	PruneMessages(ctx context.Context, olderThan time.Time, maxPerRoom int) (int64, error)

	// MarkRead records that userID has seen room up to seq (at least 0),
	// at time at: the read position only moves forward (a lower seq keeps
	// the higher one), and the time is kept as the room's last visit,
	// which orders RoomReads. A room need not have messages yet. ENOTFOUND
	// if the user does not exist, EINVALID for a guest (id 0), an empty
	// room or a negative seq.
	MarkRead(ctx context.Context, userID int64, room string, seq int64, at time.Time) error

	// RoomReads returns how far userID has read each of their rooms: the
	// rooms they have read (MarkRead), at most MaxRoomReads, most recently
	// read first; then the private rooms they are one of the two people of
	// (DMRoom keys with a stored message) and the rooms in also (for
	// example their course rooms) that are not among those, in key order.
	// Each room appears once. Unread counts the room's stored messages
	// after the read position that others wrote, up to MaxUnread. Rooms
	// that were never read have a zero ReadAt and count every stored
	// message of others.
	RoomReads(ctx context.Context, userID int64, also []string) ([]RoomRead, error)

	// Revocations returns, oldest first, up to limit (at least 1, EINVALID
	// otherwise) of the access revocations recorded with Version > after.
	// Every store method that takes access away records one in the same
	// transaction: DeleteSession (UserID and SessionID, "logged out"),
	// DeleteUserSessions (UserID, "signed out everywhere"), DeleteUser
	// (UserID, "account deleted"), SetUserActive(false) (UserID, "account
	// deactivated"), Unenroll (UserID and CourseID, "no longer enrolled")
	// and DeleteCourse (CourseID only, "course deleted"). A call that ends
	// nothing records nothing: ending a session that does not exist,
	// DeleteUserSessions for a user without sessions, or deactivating a
	// deactivated account. Every chatd process polls this, so a revocation made by any
	// process (or an admin command) reaches every socket without a query
	// per message.
	//
	// Versions increase in commit order: once a poller has seen Version v,
	// no revocation with a Version below v can appear later (the stores
	// serialise the recording of revocations to make this true).
	Revocations(ctx context.Context, after int64, limit int) ([]Revocation, error)

	// RevocationVersion returns the Version of the newest revocation (0 if
	// there is none); a process starts polling from there.
	RevocationVersion(ctx context.Context) (int64, error)

	// PruneRevocations deletes revocations recorded before olderThan; the
	// newest one is always kept, so RevocationVersion never goes back.
	PruneRevocations(ctx context.Context, olderThan time.Time) (int64, error)

	// CreateAPIKey stores a new API key made of k's Name, Bot and Rooms,
	// and sets k.ID, k.CreatedAt, k.Prefix and k.Secret: a new secret
	// (NewAPIKeySecret) of which only the hash is stored, so the caller
	// must show it now or never. Name must pass ValidateKeyName and not be
	// the name of a key that is not revoked (ECONFLICT); Bot must pass
	// ValidateBotName; Rooms is normalised by NormalizeRoomPatterns (and
	// stored in that form); CreatedBy is empty or a username (see
	// APIKey.Normalize). Anything else fails with EINVALID.
	CreateAPIKey(ctx context.Context, k *APIKey) error

	// APIKeyBySecret returns the key whose secret is secret. A secret that
	// is unknown or belongs to a revoked key gives ENOTFOUND. The returned
	// key's Secret is empty.
	APIKeyBySecret(ctx context.Context, secret string) (*APIKey, error)

	// ListAPIKeys returns every key, revoked ones too, ordered by id.
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)

	// RevokeAPIKey revokes key id: from now on APIKeyBySecret does not
	// find it. ENOTFOUND if there is no such key or it is already revoked.
	RevokeAPIKey(ctx context.Context, id int64) error

	// DeploymentID returns a random identifier of this database (32 hex
	// characters), made once and then always the same. Every chatd process
	// of one deployment shares a database and so this id; the Redis layer
	// uses it in its default channel prefix so that two deployments
	// sharing a Redis never see each other's rooms.
	DeploymentID(ctx context.Context) (string, error)

	// Close releases the store's connections. Calling it again does nothing;
	// other methods fail (with internal errors) after it.
	Close() error
}

// MaxMessagesQuery is the most messages one Messages call returns.
const MaxMessagesQuery = 500

// MaxClientIDLen is the longest Message.ClientID a store accepts, in bytes.
const MaxClientIDLen = 64

// Message is a chat message as stored: the unit of history, acks and resume.
type Message struct {
	Room      string    // the room's Key
	Seq       int64     // position in the room, from 1; set by the store
	UserID    int64     // the sender's account id; 0 for a guest or a bot
	User      string    // the sender's name as shown in frames
	Name      string    // the sender's display name when it was written ("" for none)
	ClientID  string    // the id the sender gave the message ("" if none)
	Text      string    // the message
	Time      time.Time // when it entered the room (server clock, UTC)
	Duplicate bool      // set by AppendMessages: already stored, not stored again
}

// SenderKey returns the key under which a sender's client ids are unique in
// a room: the user id for accounts, the name for guests and bots.
func (m *Message) SenderKey() string {
	if m.UserID != 0 {
		return "u:" + strconv.FormatInt(m.UserID, 10)
	}
	return "n:" + m.User
}

// MaxUnread is where RoomRead.Unread stops counting: a page shows "99+".
const MaxUnread = 100

// MaxRoomReads is the most recently read rooms that RoomReads returns (and
// also at most that many private rooms).
const MaxRoomReads = 200

// RoomRead is how far one user has read one room; see Store.RoomReads.
type RoomRead struct {
	Room     string    // the room's Key
	LastRead int64     // the highest seq the user has seen (0: none)
	ReadAt   time.Time // when the user last read the room (zero: never)
	LastSeq  int64     // the room's last seq (0: no message yet)
	LastAt   time.Time // when its newest stored message was written (zero: none stored)
	Unread   int       // stored messages after LastRead that others wrote, at most MaxUnread
}

// MessageQuery selects stored messages of one room; see Store.Messages.
type MessageQuery struct {
	After  int64 // only Seq > After
	Before int64 // only Seq < Before, unless 0
	Limit  int   // 1..MaxMessagesQuery
	Newest bool  // the newest Limit in range instead of the oldest
}

// Revocation is a recorded loss of access; see Store.Revocations. A zero
// selector matches anything: {UserID: 7} is every socket of user 7,
// {CourseID: 3} every socket in course 3's room.
type Revocation struct {
	Version   int64
	UserID    int64
	SessionID int64
	CourseID  int64
	Reason    string // shown to the user as the close reason
	Time      time.Time
}

// ValidateDisplayName returns an EINVALID *Error unless name is valid UTF-8
// without control characters or direction overrides (IsBidiControl) and at
// most MaxDisplayNameLen characters long.
// An empty display name is allowed: show the username instead.
func ValidateDisplayName(name string) error {
	return validateText("display name", name, 0, MaxDisplayNameLen)
}

// ValidateCourseTitle returns an EINVALID *Error unless title is valid UTF-8
// without control characters or direction overrides, 1 to MaxCourseTitleLen characters long and not
// only spaces.
func ValidateCourseTitle(title string) error {
	if strings.TrimSpace(title) == "" {
		return Errorf(EINVALID, "course title is required")
	}
	return validateText("course title", title, 1, MaxCourseTitleLen)
}

func validateText(what, s string, minLen, maxLen int) error {
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s is not valid UTF-8", what)
	}
	n := utf8.RuneCountInString(s)
	if n < minLen {
		return Errorf(EINVALID, "%s is required", what)
	}
	if n > maxLen {
		return Errorf(EINVALID, "%s is longer than %d characters", what, maxLen)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return Errorf(EINVALID, "%s contains control characters", what)
	}
	if strings.IndexFunc(s, IsBidiControl) >= 0 {
		return Errorf(EINVALID, "%s contains a direction override (U+202A-U+202E, U+2066-U+2069), which could reorder the text around it", what)
	}
	return nil
}

// NewSessionToken returns a new random session token (32 bytes from
// crypto/rand in unpadded URL-safe base64) and its hash as HashSessionToken
// computes it. Stores use it in CreateSession.
func NewSessionToken() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("chat: session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashSessionToken(token), nil
}

// HashSessionToken returns the SHA-256 hash of token, which is what stores
// keep instead of the token. A fast hash is enough: the token is 256 random
// bits, so it cannot be guessed from its hash.
func HashSessionToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
