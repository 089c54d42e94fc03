package chat

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Usernames are shown beside every message, so one person must not be able
// to pass for another. The rules, in the order ValidateUsername applies them
// (docs/accounts.md explains them for operators):
//
//  1. Characters: 1 to MaxUsernameLen letters, digits and "@.+-_" (Django's
//     rule), not only dots.
//  2. Form: the name is what RFC 8265's UsernameCasePreserved profile
//     (PRECIS) makes of it: NFC, no full-width or half-width forms, no
//     compatibility characters (the Kelvin sign, ligatures), no invisible
//     characters (Hangul fillers, zero-width joiners), and the RFC 5893 bidi
//     rule for right-to-left names. NormalizeUsername turns typed input
//     into that form where it can ("ＡＬＩＣＥ" becomes "ALICE").
//  3. One script: every letter is of one script, except that Latin may go
//     with Han, Hiragana and Katakana (Japanese), Han and Bopomofo (Chinese),
//     or Han and Hangul (Korean), as UTS #39's "highly restrictive" level
//     allows. Digits and "@.+-_" go with any script. "аlice" with a
//     Cyrillic а is refused.
//  4. Reserved names (reservedNames): guests' names ("guest" and anything
//     starting "guest" and one of "@.+-_"), the labels the room page shows
//     ("me", "you", "someone"), and "anonymous", "system", "chatd".
//     ValidateSignupUsername also refuses staffNames, which only an operator
//     (chatd createuser) may give.
//  5. Identity: two names are the same account when their UsernameKeys are
//     equal; the stores keep the key in a unique column, so the second is
//     refused. The key ignores case and width and maps look-alikes to one
//     skeleton (UTS #39), so "bob", "BOB" and "b0b" collide, as do names
//     written in look-alike letters of another script. CheckNewUsername also compares a new name as
//     it is displayed, capitals included ("AIice" with a capital i next to
//     "alice").

// reservedNames can never be usernames: guests' names and the words the
// room page shows in place of a name. Compared by UsernameKey.
var reservedNames = []string{"me", "you", "someone", "anonymous", "guest", "system", "chatd"}

// staffNames are refused at sign-up (ValidateSignupUsername) but an operator
// may give them with chatd createuser.
var staffNames = []string{"admin", "administrator", "root", "moderator", "staff", "support", "server"}

// guestSeparators may follow "guest" in a reserved guest name: guests are
// "guest-" and six hex digits; the others look too much like it.
const guestSeparators = "@.+-_"

var (
	reservedKeys = keys(reservedNames)
	staffKeys    = keys(staffNames)
	guestKey     = UsernameKey("guest")
)

func keys(names []string) []string {
	ks := make([]string, len(names))
	for i, n := range names {
		ks[i] = UsernameKey(n)
	}
	return ks
}

// NormalizeUsername returns name in the form ValidateUsername requires (RFC
// 8265 UsernameCasePreserved: width-mapped, NFC), or name itself when it
// cannot be normalized, so that ValidateUsername reports why. Callers apply
// it to what a person typed before validating and storing it.
func NormalizeUsername(name string) string {
	if p, err := precis.UsernameCasePreserved.String(name); err == nil {
		return p
	}
	return name
}

// ValidateUsername returns an EINVALID *Error unless name may be a new
// account's username under rules 1 to 4 above (the fifth, uniqueness, is the
// store's). Existing accounts are not re-validated: they keep working.
func ValidateUsername(name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		return Errorf(EINVALID, "username is not valid UTF-8")
	case n == 0:
		return Errorf(EINVALID, "username is required")
	case n > MaxUsernameLen:
		return Errorf(EINVALID, "username is longer than %d characters", MaxUsernameLen)
	case strings.Trim(name, ".") == "":
		return Errorf(EINVALID, "username cannot be only dots")
	}
	for _, r := range name {
		switch {
		case strings.ContainsRune("@.+-_", r):
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return Errorf(EINVALID, "username %q may contain only letters, digits and @ . + - _", name)
		}
	}
	p, err := precis.UsernameCasePreserved.String(name)
	if err != nil {
		return Errorf(EINVALID, "username %q contains characters that usernames may not use (invisible, compatibility or wrongly ordered right-to-left characters)", name)
	}
	if p != name {
		return Errorf(EINVALID, "username %q is not in its standard form; use %q", name, p)
	}
	if scripts := mixedScripts(name); scripts != nil {
		return Errorf(EINVALID, "username %q mixes the scripts %s; use letters of one script (Latin may go with Chinese, Japanese or Korean)", name, strings.Join(scripts, ", "))
	}
	if w := reservedAs(name, reservedKeys, reservedNames); w != "" {
		return Errorf(EINVALID, "the username %q is reserved (it reads as %q)", name, w)
	}
	return nil
}

// ValidateSignupUsername is ValidateUsername for names that visitors choose
// at sign-up: it also refuses staffNames such as "admin".
func ValidateSignupUsername(name string) error {
	if err := ValidateUsername(name); err != nil {
		return err
	}
	if w := reservedAs(name, staffKeys, staffNames); w != "" {
		return Errorf(EINVALID, "the username %q is reserved for the site's staff (it reads as %q)", name, w)
	}
	return nil
}

// reservedAs returns the reserved word (of words, whose keys are ks) that
// name reads as, or "". Guests' names count as "guest".
func reservedAs(name string, ks, words []string) string {
	for _, k := range []string{UsernameKey(name), displayKey(name)} {
		if i := slices.Index(ks, k); i >= 0 {
			return words[i]
		}
		if rest, ok := strings.CutPrefix(k, guestKey); ok && rest != "" && strings.ContainsRune(guestSeparators, rune(rest[0])) && slices.Contains(words, "guest") {
			return "guest" + rest[:1] + "…"
		}
	}
	return ""
}

// UsernameKey returns the form of a username under which it is unique: two
// usernames name the same account when their keys are equal. The stores
// keep it in their username_key column and look accounts up by it.
//
// The key is the name under RFC 8265's UsernameCaseMapped profile (width
// mapping, lower case, NFC), then full case folding (ß = ss, ς = σ), then
// the UTS #39 confusable skeleton, folded again: "ALICE", "ＡＬＩＣＥ",
// "alice" share a key, and so do look-alikes such as "b0b" and "bob", "rn"
// and "m", Cyrillic and Latin "асе". A name the profile refuses (only old
// accounts can have one) is keyed leniently: NFKC, case folding and
// invisible characters dropped, so "alice" with a Hangul filler keys as
// "alice" and cannot stand beside it. A key never contains '|'.
func UsernameKey(name string) string {
	p, err := precis.UsernameCaseMapped.String(name)
	if err != nil {
		p = looseFold(name)
	}
	fold := cases.Fold() // a Caser is not safe for concurrent use
	return fold.String(confusables.Skeleton(fold.String(p)))
}

// displayKey is the key of name's skeleton as displayed, capitals included:
// "AIice" (capital i) displays like "Alice" and keys as "alice", while its
// UsernameKey, which lowers case first, is "aiice".
func displayKey(name string) string {
	p, err := precis.UsernameCasePreserved.String(name)
	if err != nil {
		return UsernameKey(name)
	}
	return UsernameKey(confusables.Skeleton(p))
}

// looseFold is the fallback of UsernameKey for names the PRECIS profile
// refuses.
func looseFold(name string) string {
	s := cases.Fold().String(norm.NFKC.String(name))
	s = strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			return -1
		}
		return r
	}, s)
	return norm.NFC.String(s)
}

// CheckNewUsername checks a username for a new account: ValidateUsername
// (ValidateSignupUsername when signup), then that it does not imitate an
// existing account as displayed (displayKey): "AIice" with a capital i is
// refused with ECONFLICT next to "alice", although their UsernameKeys
// differ. An exact or look-alike duplicate by key is left to the store's
// CreateUser, which refuses it atomically.
func CheckNewUsername(ctx context.Context, st Store, name string, signup bool) error {
	validate := ValidateUsername
	if signup {
		validate = ValidateSignupUsername
	}
	if err := validate(name); err != nil {
		return err
	}
	p, err := precis.UsernameCasePreserved.String(name)
	if err != nil {
		return nil
	}
	skel := confusables.Skeleton(p)
	if UsernameKey(skel) == UsernameKey(name) {
		return nil
	}
	u, err := st.UserByUsername(ctx, skel)
	switch ErrorCode(err) {
	case "":
		return Errorf(ECONFLICT, "username %q looks like the existing account %q", name, u.Username)
	case ENOTFOUND, EINVALID:
		return nil
	}
	return err
}

// IsBidiControl reports whether r is one of the explicit bidirectional
// formatting characters (embeddings, overrides and isolates: U+202A to
// U+202E, U+2066 to U+2069), which can make a displayed line read in
// another order than it was written.
func IsBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// mixedScripts returns the scripts of name's letters, sorted, if they are
// not allowed together (rule 3), or nil.
func mixedScripts(name string) []string {
	set := map[string]bool{}
	for _, r := range name {
		if s := scriptOf(r); s != "" && s != "Common" && s != "Inherited" {
			set[s] = true
		}
	}
	if len(set) <= 1 {
		return nil
	}
	for _, allowed := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		ok := true
		for s := range set {
			ok = ok && slices.Contains(allowed, s)
		}
		if ok {
			return nil
		}
	}
	scripts := make([]string, 0, len(set))
	for s := range set {
		scripts = append(scripts, s)
	}
	sort.Strings(scripts)
	return scripts
}

// scriptOf returns the name of r's Unicode script ("" if it has none).
func scriptOf(r rune) string {
	switch {
	case r < utf8.RuneSelf && unicode.IsLetter(r):
		return "Latin"
	case r < utf8.RuneSelf:
		return "Common"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

// UsernameRow is one account as RekeyUsernames sees it.
type UsernameRow struct {
	ID       int64
	Username string
	Key      string // username_key as stored
}

// RekeyUsernames is the part of a store's start-up that keeps username_key
// equal to UsernameKey(username) when the key's definition changes, without
// a schema migration: given every account, it returns those whose stored key
// is out of date, with Key set to the new one, for the store to write in one
// transaction. If two accounts now share a key (an account made before the
// look-alike rules beside the one it imitates), it returns an EINVALID
// error naming them, and the store must refuse to start: lookups by name
// would be ambiguous. The operator renames one and starts again.
func RekeyUsernames(rows []UsernameRow) ([]UsernameRow, error) {
	byKey := make(map[string]UsernameRow, len(rows))
	var changed []UsernameRow
	var clashes []string
	for _, r := range rows {
		k := UsernameKey(r.Username)
		if other, ok := byKey[k]; ok {
			clashes = append(clashes, fmt.Sprintf("%q (id %d) and %q (id %d)", other.Username, other.ID, r.Username, r.ID))
			continue
		}
		byKey[k] = r
		if k != r.Key {
			changed = append(changed, UsernameRow{ID: r.ID, Username: r.Username, Key: k})
		}
	}
	if len(clashes) > 0 {
		return nil, Errorf(EINVALID, "these accounts now count as the same username (same letters ignoring case, width, "+
			"invisible characters and look-alikes; see docs/accounts.md): %s. Rename one of each pair in the database, "+
			"e.g. UPDATE users SET username = 'newname', username_key = 'newname' WHERE id = N (for a plain lower-case ASCII "+
			"name the key is the name), then start chatd again", strings.Join(clashes, "; "))
	}
	return changed, nil
}
