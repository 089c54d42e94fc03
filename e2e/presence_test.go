package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/ws"
)

// Presence across real chatd processes on one private Redis. Timings are
// set small (a 50 ms batch, a 500 ms heartbeat, a 2 s TTL) so that the
// tests are quick, but every wait is for an event, bounded by patience.

// presenceEnv is the environment of the presence tests' processes.
func presenceEnv(t *testing.T) []string {
	return []string{"DATA_DIR=" + t.TempDir(), "HISTORY=off", "PRESENCE=on", "PRESENCE_BATCH=50ms",
		"PRESENCE_INTERVAL=500ms", "PRESENCE_TTL=2s"}
}

// member is one chatd.v1 client and its view of the room's presence.
type member struct {
	name   string // the user, from hello
	cookie string
	c      *wstest.Client
	r      *wstest.Roster
}

// join opens a v1 socket to room on p as the guest of cookie ("" for a
// new guest) and checks that hello and the presence list come first.
func join(t *testing.T, p *testserver.Server, room, cookie string) *member {
	t.Helper()
	if cookie == "" {
		cookie = guestCookie()
	}
	c := wstest.Dial(t, wsURL(p, "/ws/chat/"+room+"/"), wstest.Options{Subprotocol: ws.Subprotocol, Header: http.Header{"Cookie": {cookie}}})
	t.Cleanup(c.Close)
	hello, err := c.TryNext(patience)
	if err != nil || hello.Str("type") != "hello" || hello["presence"] != true {
		t.Fatalf("first frame %v, %v; want hello with presence", hello, err)
	}
	m := &member{name: hello.Str("user"), cookie: cookie, c: c, r: &wstest.Roster{}}
	f, err := c.TryNext(patience)
	if err != nil || !m.r.Apply(f) || f.Str("type") != "presence" || !m.r.Users[m.name] {
		t.Fatalf("second frame %v, %v; want the presence list with %s", f, err, m.name)
	}
	return m
}

// wait reads m's frames until its roster holds exactly users.
func (m *member) wait(t *testing.T, users ...string) {
	t.Helper()
	m.c.WaitForWithin(t, patience, m.r, func() bool { return m.r.Is(users...) }, fmt.Sprintf("%s to see %v", m.name, users))
}

// apiPresence returns the users of a public room through p's API, sorted.
func apiPresence(t *testing.T, p *testserver.Server, room string) []string {
	t.Helper()
	code, body := get(t, p.URL+"/api/chat/"+room+"/presence")
	var v struct {
		Users []struct{ User string } `json:"users"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("presence API: %d %s", code, body)
	}
	var out []string
	for _, u := range v.Users {
		out = append(out, u.User)
	}
	slices.Sort(out)
	return out
}

// waitAPI waits until every process's API lists exactly users.
func waitAPI(t *testing.T, procs []*testserver.Server, room string, users ...string) {
	t.Helper()
	want := slices.Clone(users)
	slices.Sort(want)
	for _, p := range procs {
		for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
			got := apiPresence(t, p, room)
			if slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %v, want %v", p.Addr, got, want)
			}
		}
	}
}

// connections returns how many sockets p holds (/healthz).
func connections(t *testing.T, p *testserver.Server) int {
	t.Helper()
	_, body := get(t, p.URL+"/healthz")
	var v struct{ Connections int }
	_ = json.Unmarshal([]byte(body), &v)
	return v.Connections
}

func waitConnections(t *testing.T, p *testserver.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(patience); connections(t, p) != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d sockets, want %d", p.Addr, connections(t, p), n)
		}
	}
}

// TestPresenceOneProcess: the memory layer gives one process the same
// behaviour: the list after hello, joins and leaves, two tabs.
func TestPresenceOneProcess(t *testing.T) {
	p := testserver.Start(t, nil, presenceEnv(t)...)
	a := join(t, p, "solo", "")
	b := join(t, p, "solo", "")
	a.wait(t, a.name, b.name)
	b.wait(t, a.name, b.name)
	a2 := join(t, p, "solo", a.cookie)
	a.c.Close()
	waitConnections(t, p, 2)
	c := join(t, p, "solo", "")
	b.wait(t, a.name, b.name, c.name)
	if slices.Contains(b.r.Leaves, a.name) {
		t.Fatalf("%s left while a tab was still open", a.name)
	}
	a2.c.Close()
	b.wait(t, b.name, c.name)
	c.wait(t, b.name, c.name)
	waitAPI(t, []*testserver.Server{p}, "solo", b.name, c.name)
}

// TestPresenceThreeProcesses: clients on three processes see the same
// presence; a user with tabs on two processes leaves only when both are
// closed; a tutorial client is present but gets no presence frame.
func TestPresenceThreeProcesses(t *testing.T) {
	_, procs := cluster(t, 3, presenceEnv(t))
	var ms []*member
	for _, p := range procs {
		ms = append(ms, join(t, p, "trio", ""))
	}
	legacyCookie := guestCookie()
	legacy := wstest.Dial(t, wsURL(procs[0], "/ws/chat/trio/"), wstest.Options{Header: http.Header{"Cookie": {legacyCookie}}})
	t.Cleanup(legacy.Close)
	// The tutorial client shows up in everyone's presence too.
	ms[0].c.WaitForWithin(t, patience, ms[0].r, func() bool { return len(ms[0].r.Users) == 4 }, "four users")
	all := ms[0].r.List()
	for _, m := range ms {
		m.wait(t, all...)
	}
	waitAPI(t, procs, "trio", all...)

	// A second tab of the first user, on process 1; the first tab closes;
	// then a newcomer arrives on process 0. When the others see the
	// newcomer, process 0 has already dropped the first tab: the user must
	// still be present, and nobody saw them leave or join again.
	leaves, joins := make([]int, 3), make([]int, 3)
	for i, m := range ms {
		leaves[i], joins[i] = len(m.r.Leaves), len(m.r.Joins)
	}
	second := join(t, procs[1], "trio", ms[0].cookie)
	second.wait(t, all...)
	// A barrier: once everyone sees this user, who joined on process 1
	// after the second tab, every process has process 1's news of the
	// second tab (its messages are in order).
	barrier := join(t, procs[1], "trio", "")
	all = append(all, barrier.name)
	for _, m := range append(ms, second) {
		m.wait(t, all...)
	}
	ms[0].c.Close()
	waitConnections(t, procs[0], 1) // the tutorial client
	newcomer := join(t, procs[0], "trio", "")
	withNew := append(slices.Clone(all), newcomer.name)
	for i, m := range ms[1:] {
		m.wait(t, withNew...)
		if slices.Contains(m.r.Leaves[leaves[i+1]:], ms[0].name) || slices.Contains(m.r.Joins[joins[i+1]:], ms[0].name) {
			t.Fatalf("%s saw %s leave or join again: joins %v leaves %v", m.name, ms[0].name, m.r.Joins, m.r.Leaves)
		}
	}
	// The last tab closes: everyone sees the user leave.
	second.c.Close()
	rest := slices.DeleteFunc(slices.Clone(withNew), func(u string) bool { return u == ms[0].name })
	for _, m := range append(ms[1:], newcomer, barrier) {
		m.wait(t, rest...)
	}
	waitAPI(t, procs, "trio", rest...)
	// The tutorial client was sent chat messages only.
	if err := ms[1].c.TrySend([]byte(`{"message":"hello trio"}`)); err != nil {
		t.Fatal(err)
	}
	if f, err := legacy.TryNext(patience); err != nil || f.Str("type") != "chat_message" {
		t.Fatalf("tutorial client got %v, %v; want only the chat message", f, err)
	}
}

// TestPresenceProcessKilled: a process killed with SIGKILL says nothing;
// its users leave the others' presence once PRESENCE_TTL has passed.
func TestPresenceProcessKilled(t *testing.T) {
	_, procs := cluster(t, 3, presenceEnv(t))
	var ms []*member
	for _, p := range procs {
		ms = append(ms, join(t, p, "doomed", ""))
	}
	names := []string{ms[0].name, ms[1].name, ms[2].name}
	for _, m := range ms {
		m.wait(t, names...)
	}
	start := time.Now()
	if err := procs[2].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ms[0].wait(t, names[:2]...)
	ms[1].wait(t, names[:2]...)
	t.Logf("the killed process's user left the others' presence after %v (PRESENCE_TTL=2s)", time.Since(start).Round(time.Millisecond))
	waitAPI(t, procs[:2], "doomed", names[:2]...)
}

// TestPresenceProcessCutOff: a process cut off from Redis (its sockets
// open) has its users leave the others' presence after the TTL, and sees
// the others leave; when its Redis connection returns, everyone comes
// back by themselves.
func TestPresenceProcessCutOff(t *testing.T) {
	rs := redistest.Start(t)
	env := append(presenceEnv(t), "CHANNEL_LAYER=redis", "RATE_LIMIT=0")
	px := newProxy(t, rs.Addr())
	procs := []*testserver.Server{
		testserver.Start(t, nil, append(env, "REDIS_URL="+rs.URL())...),
		testserver.Start(t, nil, append(env, "REDIS_URL="+rs.URL())...),
		testserver.Start(t, nil, append(env, "REDIS_URL=redis://"+px.addr()+"/0")...),
	}
	var ms []*member
	for _, p := range procs {
		ms = append(ms, join(t, p, "island", ""))
	}
	names := []string{ms[0].name, ms[1].name, ms[2].name}
	for _, m := range ms {
		m.wait(t, names...)
	}
	px.setDown(true)
	ms[0].wait(t, names[0], names[1])
	ms[1].wait(t, names[0], names[1])
	ms[2].wait(t, names[2]) // and the island sees the others go
	px.setDown(false)
	for _, m := range ms {
		m.wait(t, names...)
	}
	waitAPI(t, procs, "island", names...)
}

// TestPresenceRedisRestart: Redis dies while users come and go; when it
// returns every process rebuilds the same presence: the user who left
// during the outage is not stuck online, the one who came is not missing.
func TestPresenceRedisRestart(t *testing.T) {
	rs, procs := cluster(t, 3, presenceEnv(t))
	var ms []*member
	for _, p := range procs {
		ms = append(ms, join(t, p, "phoenix", ""))
	}
	stay := join(t, procs[0], "phoenix", "")
	names := []string{ms[0].name, ms[1].name, ms[2].name, stay.name}
	for _, m := range append(ms, stay) {
		m.wait(t, names...)
	}
	rs.Kill()
	ms[1].c.Close() // leaves while nobody can hear it
	waitConnections(t, procs[1], 0)
	late := join(t, procs[2], "phoenix", "") // arrives while nobody can hear it
	// Past the TTL every process has dropped the others: process 0's
	// clients see only its own users.
	stay.wait(t, ms[0].name, stay.name)
	rs.Restart()
	want := []string{ms[0].name, ms[2].name, stay.name, late.name}
	for _, m := range []*member{ms[0], ms[2], stay, late} {
		m.wait(t, want...)
	}
	waitAPI(t, procs, "phoenix", want...)
	// Online status agrees everywhere too: the one who left is offline.
	for _, p := range procs {
		if got := apiPresence(t, p, "phoenix"); slices.Contains(got, ms[1].name) || !strings.HasPrefix(got[0], "guest-") {
			t.Errorf("%s: %v", p.Addr, got)
		}
	}
}
