package migrations

import (
	"slices"
	"testing"
	"testing/fstest"
)

func versions(ms []Migration) []int {
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func TestLoadAllowsGaps(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("a")},
		"m/0002_b.sql": {Data: []byte("b")},
		"m/0004_d.sql": {Data: []byte("d")},
	}
	ms := Load(fsys, "m", "test")
	if got := versions(ms); !slices.Equal(got, []int{1, 2, 4}) || ms[2].SQL != "d" || ms[2].Name != "0004_d.sql" {
		t.Fatalf("Load = %v", ms)
	}
}

func TestLoadPanicsOnBadNames(t *testing.T) {
	for _, files := range [][]string{
		{"m/0001_a.sql", "m/0001_b.sql"}, // a number twice
		{"m/01_a.sql"},                   // not 4 digits
		{"m/abcd_a.sql"},
		{"m/0000_a.sql"},
	} {
		fsys := fstest.MapFS{}
		for _, f := range files {
			fsys[f] = &fstest.MapFile{Data: []byte("x")}
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Load(%v) did not panic", files)
				}
			}()
			Load(fsys, "m", "test")
		}()
	}
}

// TestPending: a database migrated by a binary that had 1, 2 and 4 gets 3
// when a binary that has it too opens it; one that has a migration this
// binary lacks is reported.
func TestPending(t *testing.T) {
	all := []Migration{{Version: 1}, {Version: 2}, {Version: 3}, {Version: 4}}
	for _, tc := range []struct {
		applied []int
		pending []int
		unknown int
	}{
		{nil, []int{1, 2, 3, 4}, 0},
		{[]int{1, 2}, []int{3, 4}, 0},
		{[]int{1, 2, 4}, []int{3}, 0},
		{[]int{1, 2, 3, 4}, nil, 0},
		{[]int{1, 2, 3, 4, 7, 5}, nil, 7},
	} {
		p, u := Pending(all, tc.applied)
		if !slices.Equal(versions(p), tc.pending) || u != tc.unknown {
			t.Errorf("Pending(%v) = %v, %d; want %v, %d", tc.applied, versions(p), u, tc.pending, tc.unknown)
		}
	}
}
