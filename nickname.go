package chat

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// MaxNicknameLen is the longest guest nickname, in characters.
const MaxNicknameLen = 32

// NormalizeNickname returns a typed nickname in its stored form: NFC, with
// surrounding space trimmed and inner runs of white space made one space.
func NormalizeNickname(nick string) string {
	return strings.Join(strings.Fields(norm.NFC.String(nick)), " ")
}

// CheckNickname checks a guest's nickname (in NormalizeNickname's form): the
// name shown beside a guest's messages, with the word "guest", instead of
// its generated name. A nickname is not an identity – the guest's username
// stays "guest-…" – but it must not read as anyone else's, so it gets the
// username rules that concern how a name looks:
//
//   - 1 to MaxNicknameLen letters, digits, spaces and . - _ ' (no symbols,
//     no invisible or control characters, no direction overrides);
//   - letters of one script (Latin may go with Han, Hiragana, Katakana,
//     Bopomofo and Hangul), as usernames;
//   - not a reserved name (guests' names, "me", "someone", "system", staff
//     names such as "admin"), compared as usernames are, without its
//     spaces and apostrophes, so "Ad min" is "admin";
//   - not an existing account's username or a look-alike of one
//     (ECONFLICT): "Alice", "ALICE", "A1ice" and "AIice" are all refused
//     next to the account alice. This is one store lookup (two for a name
//     whose displayed skeleton differs), made whenever a nickname is used,
//     so a nickname that an account later takes stops working.
//
// Errors are EINVALID or ECONFLICT *Errors with a reason a guest can act
// on; a failing store gives its own error.
func CheckNickname(ctx context.Context, st Store, nick string) error {
	n := utf8.RuneCountInString(nick)
	switch {
	case !utf8.ValidString(nick):
		return Errorf(EINVALID, "nickname is not valid UTF-8")
	case n == 0:
		return Errorf(EINVALID, "nickname is required")
	case n > MaxNicknameLen:
		return Errorf(EINVALID, "nickname is longer than %d characters", MaxNicknameLen)
	case nick != NormalizeNickname(nick):
		return Errorf(EINVALID, "nickname has space at its ends or several spaces in a row")
	}
	for _, r := range nick {
		switch {
		case r == ' ' || strings.ContainsRune(".-_'", r):
		case unicode.IsLetter(r), unicode.IsDigit(r), unicode.Is(unicode.Mn, r):
		default:
			return Errorf(EINVALID, "a nickname may contain only letters, digits, spaces and . - _ '")
		}
	}
	if scripts := mixedScripts(nick); scripts != nil {
		return Errorf(EINVALID, "a nickname must use the letters of one script; this one mixes %s", strings.Join(scripts, ", "))
	}
	compact := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\'' {
			return -1
		}
		return r
	}, nick)
	if compact == "" {
		return Errorf(EINVALID, "a nickname needs a letter or a digit")
	}
	for _, list := range []struct{ keys, words []string }{{reservedKeys, reservedNames}, {staffKeys, staffNames}} {
		if w := reservedAs(compact, list.keys, list.words); w != "" {
			return Errorf(EINVALID, "the nickname %q is reserved (it reads as %q)", nick, w)
		}
	}
	candidates := []string{compact}
	if p, err := precis.UsernameCasePreserved.String(compact); err == nil {
		if skel := confusables.Skeleton(p); UsernameKey(skel) != UsernameKey(compact) {
			candidates = append(candidates, skel) // "AIice" as displayed: "Alice"
		}
	}
	for _, c := range candidates {
		u, err := st.UserByUsername(ctx, c)
		switch ErrorCode(err) {
		case "":
			return Errorf(ECONFLICT, "the nickname %q reads like the account %q; choose another one", nick, u.Username)
		case ENOTFOUND, EINVALID:
		default:
			return err
		}
	}
	return nil
}
