package deploy

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/testserver"
)

// The Prometheus files in deploy/prometheus are the ones docs/operations.md
// shows; these tests keep the two the same, check the files with promtool
// (when it is installed: Debian's prometheus package has it) including the
// alert rules' unit tests, and check that every chatd metric the docs and
// the rules name is one a real chatd serves.

// yamlBlocks returns the ```yaml blocks of a Markdown file.
func yamlBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllString(string(b), -1)
}

func TestPrometheusFilesMatchDocs(t *testing.T) {
	blocks := yamlBlocks(t, "../docs/operations.md")
	for _, f := range []string{"prometheus/prometheus.yml", "prometheus/chatd-alerts.yml"} {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range blocks {
			if strings.TrimSuffix(strings.TrimPrefix(b, "```yaml\n"), "```") == string(want) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/operations.md has no yaml block identical to deploy/%s", f)
		}
	}
}

func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); the rule files are not checked")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "chatd-alerts.yml"},
		{"test", "rules", "chatd-alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDocumentedMetricsExist scrapes a real chatd on the Redis layer (a
// private redis-server: the layer's restore counter exists only there) and
// checks that every chatd_ metric named in the docs and the alert rules is
// served, and that promtool's linter (when installed) finds nothing.
func TestDocumentedMetricsExist(t *testing.T) {
	rs := redistest.Start(t)
	s := testserver.Start(t, []string{"-admin-addr", "127.0.0.1:0"}, "CHANNEL_LAYER=redis", "REDIS_URL="+rs.URL())
	// The log reaches the test through a pipe copied by another goroutine,
	// so the line may come a moment after chatd said it listens: wait for it.
	re := regexp.MustCompile(`msg="admin listener started" addr=(\S+)`)
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		if m = re.FindStringSubmatch(s.Stderr()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no admin listener in the log:\n%s", s.Stderr())
		}
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(string(body), -1) {
		served[f[1]] = true
	}
	var named []byte
	for _, f := range []string{"../docs/operations.md", "prometheus/chatd-alerts.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		named = append(named, b...)
	}
	seen := map[string]bool{}
	for _, name := range regexp.MustCompile(`\bchatd_[a-z_]+[a-z]\b`).FindAllString(string(named), -1) {
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
				family = base
			}
		}
		if !served[family] && !seen[name] {
			t.Errorf("%s is named in the docs or the rules but not served", name)
		}
		seen[name] = true
	}
	if len(seen) < 20 {
		t.Errorf("only %d chatd metrics named in the docs", len(seen))
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(body))
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}
