// Package metricstest scrapes a Prometheus endpoint in tests: every sample
// by its series as the text format writes it, for example
// chatd_closes_total{by="server",code="1008"} (labels sorted by name).
package metricstest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeout bounds Wait: a failure bound for a busy machine, never a
// measurement.
var Timeout = 20 * time.Second

// Samples are one scrape's values by series.
type Samples map[string]float64

// Get returns the value of series, failing the test if it is absent.
func (s Samples) Get(t testing.TB, series string) float64 {
	t.Helper()
	v, ok := s[series]
	if !ok {
		t.Fatalf("no series %s in the scrape", series)
	}
	return v
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Samples, error) {
	s := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %v", line, err)
		}
		s[line[:i]] = v
	}
	return s, sc.Err()
}

// Scrape fetches url (an endpoint's /metrics) and parses it.
func Scrape(t testing.TB, url string) Samples {
	t.Helper()
	c := &http.Client{Timeout: Timeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return s
}

// Cond is a condition on a sample's value.
type Cond struct {
	desc string
	ok   func(float64) bool
}

// Eq is the condition: exactly want.
func Eq(want float64) Cond {
	return Cond{fmt.Sprint("= ", want), func(v float64) bool { return v == want }}
}

// AtLeast is the condition: want or more.
func AtLeast(want float64) Cond {
	return Cond{fmt.Sprint(">= ", want), func(v float64) bool { return v >= want }}
}

// Wait scrapes url until series meets cond and returns its value; after
// Timeout it fails the test with the last value seen.
func Wait(t testing.TB, url, series string, cond Cond) float64 {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		v, found := Scrape(t, url)[series]
		if found && cond.ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			if !found {
				t.Fatalf("no series %s after %v (want %s)", series, Timeout, cond.desc)
			}
			t.Fatalf("%s = %v after %v, want %s", series, v, Timeout, cond.desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
