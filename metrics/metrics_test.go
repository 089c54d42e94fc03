package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/metricstest"
	"github.com/chatd/chat/memory"
)

// serve runs the admin handler of m on a real loopback server.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(AdminHandler(m))
	t.Cleanup(srv.Close)
	return srv.URL
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAdminHandler(t *testing.T) {
	m := New("v1.2.3", nil)
	base := serve(t, m)
	s := metricstest.Scrape(t, base+"/metrics")
	if v := s.Get(t, `chatd_build_info{goversion="`+runtime.Version()+`",version="v1.2.3"}`); v != 1 {
		t.Errorf("build info %v", v)
	}
	for _, series := range []string{"go_goroutines", "process_start_time_seconds", "chatd_layer_publish_seconds_count",
		`chatd_store_seconds_count{op="append"}`, `chatd_store_errors_total{op="session"}`, "chatd_commit_batch_messages_count"} {
		s.Get(t, series)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/"} {
		if got := status(t, base+path); got != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, got)
		}
	}

	// Metrics off: pprof only.
	off := serve(t, nil)
	if got := status(t, off+"/metrics"); got != http.StatusNotFound {
		t.Errorf("GET /metrics with metrics off: %d, want 404", got)
	}
	if got := status(t, off+"/debug/pprof/"); got != http.StatusOK {
		t.Errorf("GET /debug/pprof/ with metrics off: %d, want 200", got)
	}
}

// failingLayer is a layer whose publishes fail and that reports itself
// down, and counts restores like the Redis layer.
type failingLayer struct {
	chat.Layer
	restored []func()
}

func (l *failingLayer) Publish(context.Context, string, []byte) error { return errors.New("down") }
func (l *failingLayer) Err() error                                    { return errors.New("down") }
func (l *failingLayer) Restores() uint64                              { return 7 }
func (l *failingLayer) OnRestore(f func())                            { l.restored = append(l.restored, f) }

func TestLayer(t *testing.T) {
	if l := memory.New(func(string, []byte) {}); (*Metrics)(nil).Layer(l) != chat.Layer(l) {
		t.Error("a nil Metrics wrapped the layer")
	}

	m := New("dev", nil)
	got := 0
	l := m.Layer(memory.New(func(string, []byte) { got++ }))
	if err := l.Subscribe(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Publish(t.Context(), "g", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	base := serve(t, m)
	s := metricstest.Scrape(t, base+"/metrics")
	if got != 3 || s.Get(t, "chatd_layer_publish_seconds_count") != 3 || s.Get(t, "chatd_layer_publish_errors_total") != 0 {
		t.Errorf("delivered %d; scrape %v", got, s)
	}
	if s.Get(t, "chatd_layer_up") != 1 {
		t.Error("memory layer reported down")
	}
	if _, ok := s["chatd_layer_restores_total"]; ok {
		t.Error("restores reported for a layer that does not count them")
	}

	m2 := New("dev", nil)
	fl := &failingLayer{}
	l2 := m2.Layer(fl)
	if err := l2.Publish(t.Context(), "g", nil); err == nil {
		t.Fatal("publish succeeded")
	}
	rn, ok := l2.(chat.RestoreNotifier)
	if !ok {
		t.Fatal("the wrapper hides OnRestore")
	}
	rn.OnRestore(func() {})
	if len(fl.restored) != 1 {
		t.Error("OnRestore not passed through")
	}
	s = metricstest.Scrape(t, serve(t, m2)+"/metrics")
	if s.Get(t, "chatd_layer_publish_errors_total") != 1 || s.Get(t, "chatd_layer_up") != 0 || s.Get(t, "chatd_layer_restores_total") != 7 {
		t.Errorf("scrape %v", s)
	}
}

// fakeStore answers the instrumented calls with err.
type fakeStore struct {
	chat.Store
	err error
}

func (f *fakeStore) AppendMessages(context.Context, []*chat.Message) error { return f.err }
func (f *fakeStore) Messages(context.Context, string, chat.MessageQuery) ([]*chat.Message, error) {
	return nil, f.err
}
func (f *fakeStore) SessionUser(context.Context, string) (*chat.User, *chat.Session, error) {
	return nil, nil, f.err
}
func (f *fakeStore) Revocations(context.Context, int64, int) ([]chat.Revocation, error) {
	return nil, f.err
}
func (f *fakeStore) RoomSeq(context.Context, string) (int64, int64, error) { return 0, 0, f.err }
func (f *fakeStore) PruneMessages(context.Context, time.Time, int) (int64, error) {
	return 0, f.err
}

func TestStore(t *testing.T) {
	fs := &fakeStore{}
	if (*Metrics)(nil).Store(fs) != chat.Store(fs) {
		t.Error("a nil Metrics wrapped the store")
	}
	m := New("dev", nil)
	st := m.Store(fs)
	ctx := t.Context()
	msgs := make([]*chat.Message, 5)
	_ = st.AppendMessages(ctx, msgs)
	_ = st.AppendMessages(ctx, msgs[:1])
	fs.err = errors.New("database is locked")
	_ = st.AppendMessages(ctx, msgs[:2])
	_, _ = st.Messages(ctx, "chat:r", chat.MessageQuery{})
	_, _, _ = st.RoomSeq(ctx, "chat:r")
	_, _ = st.Revocations(ctx, 0, 1)
	_, _ = st.PruneMessages(ctx, time.Time{}, 0)
	// Answers and callers that gave up are no store failures.
	fs.err = chat.Errorf(chat.ENOTFOUND, "no such session")
	_, _, _ = st.SessionUser(ctx, "x")
	fs.err = context.Canceled
	_, _, _ = st.SessionUser(ctx, "x")

	s := metricstest.Scrape(t, serve(t, m)+"/metrics")
	for series, want := range map[string]float64{
		`chatd_store_seconds_count{op="append"}`:     3,
		`chatd_store_errors_total{op="append"}`:      1,
		`chatd_store_errors_total{op="messages"}`:    1,
		`chatd_store_errors_total{op="room_seq"}`:    1,
		`chatd_store_errors_total{op="revocations"}`: 1,
		`chatd_store_errors_total{op="prune"}`:       1,
		`chatd_store_seconds_count{op="session"}`:    2,
		`chatd_store_errors_total{op="session"}`:     0,
		"chatd_commit_batch_messages_count":          3,
		"chatd_commit_batch_messages_sum":            8,
		`chatd_commit_batch_messages_bucket{le="1"}`: 1,
		`chatd_commit_batch_messages_bucket{le="4"}`: 2,
		`chatd_commit_batch_messages_bucket{le="8"}`: 3,
	} {
		if got := s.Get(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

func TestRegisterNil(t *testing.T) {
	var m *Metrics
	if err := m.Register(nil); err != nil {
		t.Error(err)
	}
}
