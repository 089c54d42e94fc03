package web_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestTutorialPageRequiredInCI runs TestBrowserTutorialPageUnchanged in a
// child process of this test binary with the tutorial page missing: where
// CI=true or CHATD_REQUIRE_BROWSER=1 is set it must fail (CI must not go
// green without it), elsewhere it skips.
func TestTutorialPageRequiredInCI(t *testing.T) {
	if os.Getenv("CHATD_TEST_CHILD") != "" {
		t.Skip("already a child")
	}
	missing := t.TempDir() // an anchors directory without the tutorial
	for _, tc := range []struct {
		env  []string
		fail bool
	}{
		{[]string{"CI=true"}, true},
		{[]string{"CHATD_REQUIRE_BROWSER=1"}, true},
		{nil, false},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBrowserTutorialPageUnchanged$", "-test.count", "1", "-test.v")
		cmd.Env = append(withoutEnv("CI", "CHATD_REQUIRE_BROWSER", "CHATD_ANCHORS"),
			append([]string{"CHATD_ANCHORS=" + missing, "CHATD_TEST_CHILD=1"}, tc.env...)...)
		out, err := cmd.CombinedOutput()
		switch {
		case tc.fail && err == nil:
			t.Errorf("with %v the missing tutorial page passed:\n%s", tc.env, out)
		case tc.fail && !strings.Contains(string(out), "tutorial page not found"):
			t.Errorf("with %v it failed for another reason:\n%s", tc.env, out)
		case !tc.fail && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("without CI it should skip: %v\n%s", err, out)
		}
	}
}

// withoutEnv returns the process environment less the named variables.
func withoutEnv(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}
