package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestLanguageSetting: LANGUAGE picks the pages' default language; a
// gettext list takes its first language chatd speaks; a shell's LANGUAGE
// naming none of them starts chatd in English with a warning, while a
// -language flag chatd cannot honour is an error.
func TestLanguageSetting(t *testing.T) {
	parse := func(args []string, env map[string]string) (*config, error) {
		return parseConfig(args, func(k string) string { return env[k] }, io.Discard)
	}
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		want    string
		warning bool
		err     string
	}{
		{nil, nil, "en", false, ""},
		{nil, map[string]string{"LANGUAGE": "es"}, "es", false, ""},
		{nil, map[string]string{"LANGUAGE": "pt_BR:pt:en"}, "pt", false, ""},
		{nil, map[string]string{"LANGUAGE": "de_DE:de"}, "en", true, ""},
		{[]string{"-language", "pt"}, map[string]string{"LANGUAGE": "es"}, "pt", false, ""},
		{[]string{"-language", "de"}, nil, "", false, "-language must be en, es or pt"},
	} {
		c, err := parse(tc.args, tc.env)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
		case c.Language != tc.want || (c.languageWarning != "") != tc.warning:
			t.Errorf("%v %v: language %q, warning %q; want %q (warning %v)", tc.args, tc.env, c.Language, c.languageWarning, tc.want, tc.warning)
		}
	}
	c, err := parse(nil, map[string]string{"UNREAD_POLL_INTERVAL": "5s"})
	if err != nil || c.UnreadPoll != 5*time.Second {
		t.Errorf("UNREAD_POLL_INTERVAL=5s: %v, %v", c.UnreadPoll, err)
	}
	if _, err := parse(nil, map[string]string{"UNREAD_POLL_INTERVAL": "1ms"}); err == nil {
		t.Error("UNREAD_POLL_INTERVAL=1ms accepted")
	}
}
