package channelsredis

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Fernet tokens, as channels_redis's symmetric_encryption_keys make them
// (the Python cryptography package's Fernet and MultiFernet). The format is
// the published Fernet specification: a version byte 0x80, a big-endian
// 64-bit timestamp in seconds, a 16-byte IV, the AES-128-CBC ciphertext of
// the PKCS#7-padded plaintext, and an HMAC-SHA256 over all of that; the
// whole token is URL-safe base64 with padding. It is built here from the
// standard library's AES, CBC mode and HMAC (no primitive is implemented
// here): no maintained Go Fernet library exists.
//
// channels_redis turns each configured key string into a Fernet key with
// urlsafe_b64encode(sha256(key)), so the 32 raw key bytes are sha256(key):
// the first 16 sign, the last 16 encrypt.

// fernetKey is one derived Fernet key.
type fernetKey struct {
	sign, enc []byte
}

// newFernetKey derives the Fernet key channels_redis makes from key.
func newFernetKey(key string) fernetKey {
	sum := sha256.Sum256([]byte(key))
	return fernetKey{sign: sum[:16:16], enc: sum[16:]}
}

const (
	fernetVersion = 0x80
	// fernetMaxSkew is how far in the future a token's timestamp may be,
	// as the Python implementation allows.
	fernetMaxSkew = 60 * time.Second
)

var errFernet = errors.New("channelsredis: invalid or expired encrypted message (are symmetric_encryption_keys the same on both sides?)")

// fernetEncrypt returns the token of plaintext under k, dated now.
func fernetEncrypt(k fernetKey, plaintext []byte, now time.Time) ([]byte, error) {
	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	msg := make([]byte, 0, 1+8+aes.BlockSize+len(plaintext)+pad+sha256.Size)
	msg = append(msg, fernetVersion)
	msg = binary.BigEndian.AppendUint64(msg, uint64(now.Unix()))
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	msg = append(msg, iv...)
	ctStart := len(msg)
	msg = append(msg, plaintext...)
	msg = append(msg, bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(msg[ctStart:], msg[ctStart:])
	mac := hmac.New(sha256.New, k.sign)
	mac.Write(msg)
	msg = mac.Sum(msg)
	out := make([]byte, base64.URLEncoding.EncodedLen(len(msg)))
	base64.URLEncoding.Encode(out, msg)
	return out, nil
}

// fernetDecrypt returns the plaintext of token if one of keys made it and
// it is at most ttl old (ttl 0: any age), as MultiFernet.decrypt does.
func fernetDecrypt(keys []fernetKey, token []byte, ttl time.Duration, now time.Time) ([]byte, error) {
	raw := make([]byte, base64.URLEncoding.DecodedLen(len(token)))
	n, err := base64.URLEncoding.Decode(raw, token)
	if err != nil {
		return nil, errFernet
	}
	raw = raw[:n]
	if len(raw) < 1+8+aes.BlockSize+aes.BlockSize+sha256.Size || raw[0] != fernetVersion {
		return nil, errFernet
	}
	ts := time.Unix(int64(binary.BigEndian.Uint64(raw[1:9])), 0)
	if ttl > 0 && ts.Add(ttl).Before(now) {
		return nil, errFernet
	}
	if ts.After(now.Add(fernetMaxSkew)) {
		return nil, errFernet
	}
	body, sum := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	ct := body[1+8+aes.BlockSize:]
	if len(ct)%aes.BlockSize != 0 {
		return nil, errFernet
	}
	for _, k := range keys {
		mac := hmac.New(sha256.New, k.sign)
		mac.Write(body)
		if !hmac.Equal(mac.Sum(nil), sum) {
			continue
		}
		block, err := aes.NewCipher(k.enc)
		if err != nil {
			return nil, err
		}
		pt := make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, body[1+8:1+8+aes.BlockSize]).CryptBlocks(pt, ct)
		pad := int(pt[len(pt)-1])
		if pad < 1 || pad > aes.BlockSize || pad > len(pt) {
			return nil, errFernet
		}
		for _, b := range pt[len(pt)-pad:] {
			if int(b) != pad {
				return nil, errFernet
			}
		}
		return pt[:len(pt)-pad], nil
	}
	return nil, errFernet
}
