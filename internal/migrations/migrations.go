// Package migrations loads a store's embedded SQL migrations. The sqlite and
// postgres stores each embed their own dialect's files and apply them their
// own way; the naming rule and the loading are shared here.
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
// are NNNN_description.sql, numbered from 1 without gaps; anything else is a
// programming error in the binary, so Load panics with a message prefixed by
// pkg (e.g. "sqlite").
func Load(fsys fs.FS, dir, pkg string) []Migration {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	ms := make([]Migration, 0, len(names))
	for i, name := range names {
		base := strings.TrimPrefix(name, dir+"/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			panic(fmt.Sprintf("%s: migration %s is out of sequence (want number %d)", pkg, base, i+1))
		}
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
