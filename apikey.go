package chat

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"
)

// APIKey lets other software post into rooms through the HTTP publish API
// (POST /api/chat/<room>/messages) without an account. It posts as a bot:
// frames show BotUser(Bot). The store keeps only a SHA-256 hash of Secret,
// so the secret is shown once, when the key is made.
type APIKey struct {
	ID        int64
	Name      string    // unique among keys not revoked; ValidateKeyName
	Bot       string    // the bot it posts as (ValidateBotName); frames show BotUser(Bot)
	Rooms     string    // the rooms it may post to: room patterns (see MatchRooms)
	Prefix    string    // the secret's first characters, to recognise it in lists
	CreatedBy string    // the username of whoever made it on /manage/keys/, "" for the command line
	CreatedAt time.Time // set by the store
	RevokedAt time.Time // zero while the key is valid
	Secret    string    // set only on the value CreateAPIKey filled in
}

// Revoked reports whether the key was revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// AllowsRoom reports whether the key may post to the room with key room.
func (k *APIKey) AllowsRoom(room string) bool { return MatchRooms(k.Rooms, room) }

// Normalize checks k's fields for Store.CreateAPIKey and puts Rooms in
// the form stored (NormalizeRoomPatterns): Name must pass
// ValidateKeyName, Bot ValidateBotName, and CreatedBy be empty or at most
// MaxUsernameLen characters of valid UTF-8. It returns an EINVALID *Error.
func (k *APIKey) Normalize() error {
	if err := ValidateKeyName(k.Name); err != nil {
		return err
	}
	if err := ValidateBotName(k.Bot); err != nil {
		return err
	}
	rooms, err := NormalizeRoomPatterns(k.Rooms)
	if err != nil {
		return err
	}
	if k.CreatedBy != "" && ValidateUsername(k.CreatedBy) != nil {
		return Errorf(EINVALID, "created by must be empty or a username, not %q", k.CreatedBy)
	}
	k.Rooms = rooms
	return nil
}

// BotPrefix starts the name of every bot in frames. A colon can occur
// neither in a username (ValidateUsername) nor in a guest's name
// ("guest-" and hex digits), so no account or guest can ever appear as a
// bot, and no bot as one of them.
const BotPrefix = "bot:"

// BotUser returns the name frames show for bot name: "bot:" + name.
func BotUser(name string) string { return BotPrefix + name }

// MaxRoomPatternsLen bounds APIKey.Rooms, in bytes.
const MaxRoomPatternsLen = 1000

// ValidateBotName returns an EINVALID *Error unless name may name a bot:
// the rule of usernames (1 to MaxUsernameLen letters, digits and @ . + -
// _, not only dots).
func ValidateBotName(name string) error {
	if ValidateUsername(name) != nil {
		return Errorf(EINVALID, "bot name %q must be 1 to %d letters, digits or @ . + - _", name, MaxUsernameLen)
	}
	return nil
}

// ValidateKeyName returns an EINVALID *Error unless name may name an API
// key: the rule of usernames.
func ValidateKeyName(name string) error {
	if ValidateUsername(name) != nil {
		return Errorf(EINVALID, "key name %q must be 1 to %d letters, digits or @ . + - _", name, MaxUsernameLen)
	}
	return nil
}

// NormalizeRoomPatterns checks a list of room patterns and returns it in
// the form stored: the patterns separated by single commas, without
// spaces. Each pattern is a glob matched against a room's key
// (Room.Key): "chat:lobby" one public room, "chat:announce-*" the public
// rooms whose names start with "announce-", "course:12" course 12's room,
// "course:*" every course room, "dm:*" every private room, "*" every room.
// '*' matches any run of characters, '?' one character, and [...] one of a
// set (see path.Match). A pattern must be "*" or start with "chat:",
// "course:" or "dm:", so that a forgotten prefix ("lobby") is refused
// instead of matching nothing. It returns an EINVALID *Error for an empty
// list or a bad pattern.
func NormalizeRoomPatterns(s string) (string, error) {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return "", Errorf(EINVALID, "room pattern %q contains spaces or control characters", p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return "", Errorf(EINVALID, "room pattern %q is not a valid pattern (unclosed [ or a trailing \\)", p)
		}
		if p != "*" && !strings.HasPrefix(p, "chat:") && !strings.HasPrefix(p, "course:") && !strings.HasPrefix(p, "dm:") {
			return "", Errorf(EINVALID, "room pattern %q must be * or start with chat:, course: or dm: (for example chat:lobby, chat:announce-*, course:12, dm:*)", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return "", Errorf(EINVALID, "at least one room pattern is required (for example chat:*)")
	}
	joined := strings.Join(out, ",")
	if len(joined) > MaxRoomPatternsLen {
		return "", Errorf(EINVALID, "room patterns are longer than %d bytes", MaxRoomPatternsLen)
	}
	return joined, nil
}

// MatchRooms reports whether the room with key room matches one of
// patterns, a list as NormalizeRoomPatterns returns it.
func MatchRooms(patterns, room string) bool {
	for p := range strings.SplitSeq(patterns, ",") {
		if p == "" {
			continue
		}
		if ok, err := path.Match(p, room); ok && err == nil {
			return true
		}
	}
	return false
}

// APIKeySecretPrefix starts every API key secret, so that a leaked one is
// easy to recognise (and to search for).
const APIKeySecretPrefix = "chatd_"

// apiKeyShownPrefix is how much of a secret lists show.
const apiKeyShownPrefix = len(APIKeySecretPrefix) + 8

// NewAPIKeySecret returns a new API key secret ("chatd_" and 32 random
// bytes in unpadded URL-safe base64), the prefix lists show, and its hash
// as HashAPIKey computes it. Stores use it in CreateAPIKey.
func NewAPIKeySecret() (secret, prefix string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", nil, fmt.Errorf("chat: api key: %w", err)
	}
	secret = APIKeySecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, secret[:apiKeyShownPrefix], HashAPIKey(secret), nil
}

// HashAPIKey returns the SHA-256 hash of secret, which is what stores keep
// instead of the secret. As for session tokens, a fast hash is enough: the
// secret has 256 random bits.
func HashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
