// Package migrations loads a store's embedded SQL migrations. The sqlite and
// postgres stores each embed their own dialect's files and apply them their
// own way; the naming rule, the loading and the choice of what to apply are
// shared here.
package migrations

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migration is one schema step.
type Migration struct {
	Version int    // 1, 2, ...
	Name    string // file name, e.g. 0001_accounts_courses.sql
	SQL     string
}

// Load returns the migrations in fsys under dir, in order. Their file names
// are NNNN_description.sql with distinct numbers from 1 upwards; anything
// else is a programming error in the binary, so Load panics with a message
// prefixed by pkg (e.g. "sqlite").
//
// A number may be missing: migrations are written on several branches at
// once, each taking its own number, and a binary built from one branch
// lacks the others' (a gap). Stores therefore record every migration they
// apply and apply whatever is missing (Pending), not only the numbers above
// the highest applied, so a migration that arrives later with a lower
// number is still applied. Two migrations that may meet this way must not
// depend on each other.
func Load(fsys fs.FS, dir, pkg string) []Migration {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	ms := make([]Migration, 0, len(names))
	prev := 0
	for _, name := range names {
		base := strings.TrimPrefix(name, dir+"/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || len(num) != 4 || v <= prev {
			panic(fmt.Sprintf("%s: migration %s is out of sequence (want a 4-digit number above %d)", pkg, base, prev))
		}
		prev = v
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	if len(ms) == 0 {
		panic(pkg + ": no migrations embedded")
	}
	return ms
}

// Pending returns the migrations of ms that are not in applied, in order.
// If applied holds a version that ms does not have, the database was
// migrated by a newer binary (or one built from another branch): Pending
// returns that version as unknown (the highest such), and the store must
// refuse the database.
func Pending(ms []Migration, applied []int) (pending []Migration, unknown int) {
	have := make(map[int]bool, len(applied))
	for _, v := range applied {
		have[v] = true
	}
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
		if !have[m.Version] {
			pending = append(pending, m)
		}
	}
	for _, v := range applied {
		if !known[v] && v > unknown {
			unknown = v
		}
	}
	return pending, unknown
}
