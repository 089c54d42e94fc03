// Package password hashes and verifies passwords with argon2id (RFC 9106).
//
// Hashes are encoded in the PHC string format used by the reference
// implementation and most libraries, so they carry their own parameters:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with salt and key in unpadded standard base64. Changing the parameters
// later does not break stored hashes; NeedsRehash tells when to upgrade one.
//
// The parameters are OWASP's first argon2id recommendation: 19 MiB of memory,
// 2 passes, 1 lane. On a 2-core server one verification takes a few tens of
// milliseconds and one core; a single lane lets two logins run side by side,
// one per core, instead of each taking both. Memory is the cost that limits
// how many verifications can run at once, so this package runs at most
// GOMAXPROCS of them at a time (about 19 MiB each); further callers wait,
// which bounds the memory a burst of logins can take.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters used for new hashes.
const (
	Memory  = 19 * 1024 // KiB
	Time    = 2         // passes
	Threads = 1         // lanes
	SaltLen = 16        // bytes
	KeyLen  = 32        // bytes
)

// MaxLen is the longest password accepted, in bytes. Longer input is refused
// rather than hashed, so a client cannot make the server hash megabytes.
const MaxLen = 1024

// Limits on the parameters of a hash being verified: a corrupt or hostile
// stored hash must not make Verify allocate gigabytes or spin for minutes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 16
	maxThreads = 16
)

var (
	// ErrEmpty is returned by Hash for an empty password.
	ErrEmpty = errors.New("password: empty password")
	// ErrTooLong is returned by Hash for a password longer than MaxLen.
	ErrTooLong = fmt.Errorf("password: longer than %d bytes", MaxLen)
	// ErrMalformed is returned by Verify for an encoded hash it cannot read.
	ErrMalformed = errors.New("password: malformed argon2id hash")
)

// slots limits how many argon2 computations run at once (see the package
// comment). Sending acquires a slot, receiving releases it.
var slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func key(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey(password, salt, time, memory, threads, keyLen)
}

// Hash returns the PHC-encoded argon2id hash of password with a new random
// salt.
func Hash(password string) (string, error) {
	if password == "" {
		return "", ErrEmpty
	}
	if len(password) > MaxLen {
		return "", ErrTooLong
	}
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	k := key([]byte(password), salt, Time, Memory, Threads, KeyLen)
	return encode(params{memory: Memory, time: Time, threads: Threads}, salt, k), nil
}

// Verify reports whether password matches the encoded hash. The comparison
// takes constant time. A mismatch is (false, nil); an error means the hash
// could not be read (ErrMalformed), never that the password was wrong.
func Verify(password, encoded string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > MaxLen {
		// Spend the time anyway: the answer must not leak through timing.
		VerifyDummy("")
		return false, nil
	}
	got := key([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash has the current parameters and a salt and key of the usual
// lengths. No password matches it in practice (its key is all zeros).
var dummyHash = encode(params{memory: Memory, time: Time, threads: Threads}, make([]byte, SaltLen), make([]byte, KeyLen))

// VerifyDummy does the work of Verify against a hash with the current
// parameters and throws the result away. Login calls it when the username is
// unknown, so that a failed login takes about as long whether or not the
// account exists.
func VerifyDummy(password string) {
	if len(password) > MaxLen {
		password = ""
	}
	_, _ = Verify(password, dummyHash)
}

// NeedsRehash reports whether encoded was made with parameters other than the
// current ones (or cannot be read), so that after a successful login the
// caller should store a fresh Hash of the password.
func NeedsRehash(encoded string) bool {
	p, salt, k, err := decode(encoded)
	return err != nil || p != (params{memory: Memory, time: Time, threads: Threads}) ||
		len(salt) != SaltLen || len(k) != KeyLen
}

type params struct {
	memory  uint32
	time    uint32
	threads uint8
}

var b64 = base64.RawStdEncoding

func encode(p params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decode(encoded string) (p params, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=...,t=...,p=...", salt, key
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, ErrMalformed
	}
	var version int
	if _, err := fmt.Sscanf(f[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, ErrMalformed
	}
	var m, t, th uint64
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 ||
		f[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, th) {
		return p, nil, nil, ErrMalformed
	}
	if t < 1 || t > maxTime || th < 1 || th > maxThreads || m < 8*th || m > maxMemory {
		return p, nil, nil, ErrMalformed
	}
	salt, err = b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformed
	}
	key, err = b64.DecodeString(f[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformed
	}
	return params{memory: uint32(m), time: uint32(t), threads: uint8(th)}, salt, key, nil
}
