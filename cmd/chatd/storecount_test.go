package main

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/ws"
)

// TestStoreMethodsListed: countingStore counts every method of chat.Store
// but Close; a method added to the interface must be added to the list
// (and get a counting wrapper, or the embedded store's would run uncounted).
func TestStoreMethodsListed(t *testing.T) {
	it := reflect.TypeOf((*chat.Store)(nil)).Elem()
	var want []string
	for i := range it.NumMethod() {
		if m := it.Method(i).Name; m != "Close" {
			want = append(want, m)
		}
	}
	got := slices.Sorted(slices.Values(storeMethods))
	if !slices.Equal(got, want) {
		t.Fatalf("storeMethods = %v\nchat.Store has %v", got, want)
	}
	// Every listed method is declared on *countingStore in storecount.go,
	// not promoted uncounted from the embedded store.
	f, err := parser.ParseFile(token.NewFileSet(), "storecount.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
			declared[fd.Name.Name] = true
		}
	}
	for _, name := range storeMethods {
		if !declared[name] {
			t.Errorf("countingStore does not declare %s: it would run uncounted", name)
		}
	}
}

// TestDebugVarsCountStoreCalls reads /debug/vars after a few store calls.
func TestDebugVarsCountStoreCalls(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := newCountingStore(st)
	var s chat.Store = cs
	for range 3 {
		if _, _, err := s.RoomSeq(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Messages(ctx, "lobby", chat.MessageQuery{Newest: true, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	hub := ws.NewHub(ws.Config{})
	node, err := core.New(core.Config{Store: s, Publisher: hub})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close(ctx)
	rec := httptest.NewRecorder()
	debugHandler(cs, node, hub).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/vars", nil))
	var v debugVars
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, rec.Body.String())
	}
	if v.StoreCalls["RoomSeq"] != 3 || v.StoreCalls["Messages"] != 1 || v.StoreCalls["total"] != 4 {
		t.Fatalf("store_calls = %v, want RoomSeq 3, Messages 1, total 4", v.StoreCalls)
	}
}

func TestDebugAddrLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:6060": true, "localhost:0": true, "[::1]:6060": true, ":6060": false, "0.0.0.0:6060": false, "10.0.0.1:6060": false, "nonsense": false} {
		if err := checkDebugAddr(addr); (err == nil) != ok {
			t.Errorf("checkDebugAddr(%q) = %v", addr, err)
		}
	}
}
