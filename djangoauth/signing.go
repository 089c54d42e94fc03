package djangoauth

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
)

// Django's signing (django.core.signing and django.utils.crypto), enough to
// read what a Django site signs: sessions in the database and
// signed-cookie sessions. Only the SHA-256 forms (Django 3.1+ defaults,
// the only ones from 4.0 on) are accepted.

// Salts of the session backends and of the session auth hash.
const (
	saltDBSession      = "django.contrib.sessions.SessionStore"
	saltSignedCookies  = "django.contrib.sessions.backends.signed_cookies"
	saltSessionAuthKey = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
)

// maxPayload bounds a decompressed session, so a hostile database row or
// cookie cannot inflate without end.
const maxPayload = 1 << 20

var errBadSignature = errors.New("djangoauth: bad signature")

// saltedHMAC is django.utils.crypto.salted_hmac with SHA-256: an HMAC keyed
// with sha256(keySalt + secret).
func saltedHMAC(keySalt, value, secret string) []byte {
	key := sha256.Sum256([]byte(keySalt + secret))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(value))
	return m.Sum(nil)
}

// b64 is Django's b64_encode: URL-safe base64 without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// unsign checks a signing.dumps value ("payload:timestamp:signature")
// made with salt and one of secrets, and returns its payload and
// timestamp.
func unsign(signed, salt string, secrets []string) (payload string, ts time.Time, err error) {
	value, sig, ok := cutLast(signed, ':')
	if !ok {
		return "", time.Time{}, errBadSignature
	}
	good := false
	for _, s := range secrets {
		want := b64(saltedHMAC(salt+"signer", value, s))
		if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1 {
			good = true
		}
	}
	if !good {
		return "", time.Time{}, errBadSignature
	}
	payload, tsText, ok := cutLast(value, ':')
	if !ok {
		return "", time.Time{}, errBadSignature
	}
	n, ok := base62(tsText)
	if !ok {
		return "", time.Time{}, errBadSignature
	}
	return payload, time.Unix(n, 0), nil
}

// decodeSession decodes a signed payload (b64 JSON, or "." + b64 zlib
// JSON) into a session dictionary. Pickled sessions are not readable.
func decodeSession(payload string) (map[string]any, error) {
	compressed := strings.HasPrefix(payload, ".")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(payload, "."))
	if err != nil {
		return nil, errors.New("djangoauth: session payload is not base64")
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, errors.New("djangoauth: session payload is not zlib")
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxPayload+1))
		if err != nil || len(raw) > maxPayload {
			return nil, errors.New("djangoauth: session payload cannot be decompressed")
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("djangoauth: session is not JSON (only Django's default JSONSerializer is supported)")
	}
	return m, nil
}

// sessionAuthHash is AbstractBaseUser.get_session_auth_hash for a stored
// password hash and a secret.
func sessionAuthHash(password, secret string) string {
	return hex.EncodeToString(saltedHMAC(saltSessionAuthKey, password, secret))
}

// base62 decodes Django's base62 timestamps (0-9A-Za-z).
func base62(s string) (int64, bool) {
	if s == "" || len(s) > 11 {
		return 0, false
	}
	neg := false
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d int64
		switch {
		case c >= '0' && c <= '9':
			d = int64(c - '0')
		case c >= 'A' && c <= 'Z':
			d = int64(c-'A') + 10
		case c >= 'a' && c <= 'z':
			d = int64(c-'a') + 36
		default:
			return 0, false
		}
		n = n*62 + d
	}
	if neg {
		n = -n
	}
	return n, true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
