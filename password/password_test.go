package password

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the expected PHC prefix", h)
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"correct horse battery staple", true},
		{"Correct horse battery staple", false},
		{"correct horse battery staple ", false},
		{"", false},
		{strings.Repeat("x", MaxLen+1), false},
	}
	for _, tt := range tests {
		ok, err := Verify(tt.password, h)
		if err != nil || ok != tt.want {
			t.Errorf("Verify(%.20q) = %v, %v; want %v, nil", tt.password, ok, err, tt.want)
		}
	}
	if NeedsRehash(h) {
		t.Error("NeedsRehash of a fresh hash = true")
	}
}

func TestSaltIsRandom(t *testing.T) {
	a, _ := Hash("same")
	b, _ := Hash("same")
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for _, h := range []string{a, b} {
		if ok, err := Verify("same", h); !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// TestFormat recomputes the key from the encoded parameters with the argon2
// package directly, so the encoding is the standard one and not only
// self-consistent.
func TestFormat(t *testing.T) {
	h, err := Hash("pässwörd")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(h, "$")
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	key, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) != SaltLen || len(key) != KeyLen {
		t.Fatalf("salt %d bytes (%v), key %d bytes (%v)", len(salt), err1, len(key), err2)
	}
	want := argon2.IDKey([]byte("pässwörd"), salt, Time, Memory, Threads, KeyLen)
	if string(want) != string(key) {
		t.Fatal("stored key is not argon2id(password, salt) with the stated parameters")
	}
}

func TestOtherParameters(t *testing.T) {
	// A hash made with other (older, cheaper) parameters still verifies, and
	// NeedsRehash asks for an upgrade.
	salt := []byte("0123456789abcdef")
	p := params{memory: 8 * 1024, time: 1, threads: 2}
	h := encode(p, salt, argon2.IDKey([]byte("pw"), salt, p.time, p.memory, p.threads, 32))
	if ok, err := Verify("pw", h); !ok || err != nil {
		t.Fatalf("Verify with other parameters = %v, %v", ok, err)
	}
	if ok, _ := Verify("px", h); ok {
		t.Fatal("wrong password accepted")
	}
	if !NeedsRehash(h) {
		t.Fatal("NeedsRehash = false for old parameters")
	}
}

func TestHashRefuses(t *testing.T) {
	if _, err := Hash(""); !errors.Is(err, ErrEmpty) {
		t.Errorf("Hash(\"\") error = %v, want ErrEmpty", err)
	}
	if _, err := Hash(strings.Repeat("x", MaxLen+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("Hash(long) error = %v, want ErrTooLong", err)
	}
	if _, err := Hash(strings.Repeat("x", MaxLen)); err != nil {
		t.Errorf("Hash(MaxLen bytes) = %v", err)
	}
}

func TestMalformed(t *testing.T) {
	good, _ := Hash("pw")
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	bad := []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999,t=2,p=1$" + salt + "$" + key, // would allocate ~95 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + "!!" + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key,
	}
	for _, h := range bad {
		ok, err := Verify("pw", h)
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformed", h, ok, err)
		}
		if !NeedsRehash(h) {
			t.Errorf("NeedsRehash(%q) = false", h)
		}
	}
}

func TestVerifyDummy(t *testing.T) {
	// The dummy hash has exactly the parameters of a real one, which is what
	// makes it cost the same; timing itself is not asserted.
	h, _ := Hash("pw")
	cut := func(h string) string { return h[:strings.LastIndex(h[:strings.LastIndex(h, "$")], "$")] }
	if cut(dummyHash) != cut(h) {
		t.Fatalf("dummy hash parameters %q differ from a real hash's %q", cut(dummyHash), cut(h))
	}
	if NeedsRehash(dummyHash) {
		t.Fatal("dummy hash is not in the current format")
	}
	VerifyDummy("pw")
	VerifyDummy(strings.Repeat("x", MaxLen+1))
	if ok, err := Verify("", dummyHash); ok || err != nil {
		t.Fatalf("Verify against the dummy = %v, %v", ok, err)
	}
}

func TestConcurrent(t *testing.T) {
	// More callers than slots: all finish and get the right answers.
	var wg sync.WaitGroup
	for i := range 2*cap(slots) + 1 {
		wg.Go(func() {
			pw := strings.Repeat("p", i+1)
			h, err := Hash(pw)
			if err != nil {
				t.Error(err)
				return
			}
			if ok, err := Verify(pw, h); !ok || err != nil {
				t.Errorf("Verify = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
}
