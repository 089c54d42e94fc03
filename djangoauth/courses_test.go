package djangoauth

import (
	"strings"
	"testing"
)

func TestBindParams(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "SELECT 1 FROM t WHERE id = :course AND u = :user", want: "SELECT 1 FROM t WHERE id = $1 AND u = $2"},
		{in: "SELECT 1 WHERE a = :user OR b = :user AND c = :course", want: "SELECT 1 WHERE a = $2 OR b = $2 AND c = $1"},
		{in: "SELECT ':user', \":course\" WHERE x = :course::bigint AND y=:user", want: "SELECT ':user', \":course\" WHERE x = $1::bigint AND y=$2"},
		{in: "SELECT 'it''s' WHERE x=:course AND y=:user", want: "SELECT 'it''s' WHERE x=$1 AND y=$2"},
		{in: "SELECT 1 WHERE x = ? AND y = ?", err: "not ?"},
		{in: "SELECT 1 WHERE x = :course", err: "must use the parameter :user"},
		{in: "SELECT 1 WHERE x = :course AND y = :uid", err: "unknown parameter :uid"},
		{in: "SELECT 1 WHERE x = ':course", err: "unterminated"},
	} {
		got, err := bindParams(c.in, "course", "user")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
