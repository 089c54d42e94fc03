package djangoauth

import "testing"

// The test vector of django-interop.md §5.5 (Django 5.2.18).
const (
	vectorSecret   = "anchor-benchmark-not-secret"
	vectorData     = ".eJxVjDsOwjAQBe_iGlnZrO1sKOlzBsvrDw4gW4qTCnF3EikFtG9m3ltYt63Zbi0udg7iKkBcfjd2_hnLAcLDlXuVvpZ1mVkeijxpk1MN8XU73b-D7Frea1KAhpDVkAaPmKJGwlHr4A1SSGS4U72OgMiAtNtAnSYeASEpcr34fAGuKjYx:1xXi6j:VUSZrQt3xy3dDTn6Z7NAgzgvcAAwziGNYImPLCU67pA"
	vectorPassword = "pbkdf2_sha256$1000000$mwDQ6EFOxHXpVT2aPiWE4g$pmryyUmpooDMMDObNAcWp2c925PccKb4KdUggQuuv+Q="
	vectorHash     = "8413683b47f7c33fe5383955dc638df86b0425e133b13884118058b9131f48a2"
)

func TestDjangoVector(t *testing.T) {
	payload, ts, err := unsign(vectorData, saltDBSession, []string{"old", vectorSecret})
	if err != nil {
		t.Fatal(err)
	}
	if ts.Unix() < 1.7e9 {
		t.Errorf("timestamp %v", ts)
	}
	sess, err := decodeSession(payload)
	if err != nil {
		t.Fatal(err)
	}
	if sess["_auth_user_hash"] != vectorHash || sess["_auth_user_backend"] != ModelBackend {
		t.Errorf("session %v", sess)
	}
	if got := sessionAuthHash(vectorPassword, vectorSecret); got != vectorHash {
		t.Errorf("auth hash %s, want %s", got, vectorHash)
	}
	if _, _, err := unsign(vectorData, saltDBSession, []string{"wrong"}); err == nil {
		t.Error("wrong key accepted")
	}
	if _, _, err := unsign(vectorData, saltSignedCookies, []string{vectorSecret}); err == nil {
		t.Error("wrong salt accepted")
	}
	bad := []byte(vectorData)
	bad[10] ^= 1
	if _, _, err := unsign(string(bad), saltDBSession, []string{vectorSecret}); err == nil {
		t.Error("tampered data accepted")
	}
	if n, ok := base62("1xXi6j"); !ok || n < 1.7e9 {
		t.Errorf("base62 %d %v", n, ok)
	}
	for _, bad := range []string{"", "plain", ".!!!", "e30"} {
		if s, err := decodeSession(bad); err == nil && len(s) > 0 {
			t.Errorf("decoded %q", bad)
		}
	}
}
