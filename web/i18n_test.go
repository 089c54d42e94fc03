package web

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template/parse"
)

// The message catalog must cover every string a person can see. The keys
// are collected from where they are used:
//
//   - templates: every {{.L.T "…"}} / {{$.L.T "…"}} (parsed, not grepped);
//   - Go code of this package: the first argument of msg("…") and of any
//     .T("…") call, when it is a string literal;
//   - the chat package's validation messages that pages show
//     (chat.Errorf(chat.EINVALID | ECONFLICT, "…") in username.go,
//     nickname.go, store.go and apikey.go), with the field names they name;
//   - the scripts: jsMessages, which must list exactly the t("…") and
//     tn(n, "…", "…") keys of static/*.js.
//
// Each key needs a translation in Spanish and Portuguese, with the same
// format verbs in the same order, and no locale file may keep a key that
// nothing uses. Set CHATD_I18N_SKELETON=1 to print the missing entries as
// JSON to paste into a locale file.
func TestTranslations(t *testing.T) {
	keys := map[string]string{} // key -> where it is used
	add := func(k, where string) {
		if _, ok := keys[k]; !ok {
			keys[k] = where
		}
	}
	for k, where := range templateKeys(t) {
		add(k, where)
	}
	for k, where := range goKeys(t) {
		add(k, where)
	}
	for _, k := range jsMessages {
		add(k, "jsMessages")
	}
	for _, k := range fieldNames {
		add(k, "fieldNames")
	}
	checkScriptKeys(t)

	for _, lang := range []string{"es", "pt"} {
		lf, err := readLocale("locales/" + lang + ".json")
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]localeMessage{}
		for _, m := range lf.Messages {
			if _, dup := have[m.ID]; dup {
				t.Errorf("%s: %q twice", lang, m.ID)
			}
			have[m.ID] = m
		}
		var missing []string
		for k := range keys {
			m, ok := have[k]
			if !ok {
				missing = append(missing, k)
				continue
			}
			texts, err := m.texts()
			if err != nil || len(texts) == 0 {
				t.Errorf("%s: %q: %v", lang, k, err)
				continue
			}
			for _, tr := range texts {
				if strings.TrimSpace(tr) == "" {
					t.Errorf("%s: %q has an empty translation", lang, k)
				}
				if got, want := verbs(tr), verbs(k); !slices.Equal(got, want) {
					t.Errorf("%s: %q: the translation %q has the verbs %v, the key %v", lang, k, tr, got, want)
				}
				if got, want := placeholders(tr), placeholders(k); !slices.Equal(got, want) {
					t.Errorf("%s: %q: the translation %q has the placeholders %v, the key %v", lang, k, tr, got, want)
				}
			}
		}
		sort.Strings(missing)
		for _, k := range missing {
			t.Errorf("%s: no translation of %q (used in %s)", lang, k, keys[k])
		}
		if len(missing) > 0 && os.Getenv("CHATD_I18N_SKELETON") != "" {
			var b strings.Builder
			for _, k := range missing {
				id, _ := json.Marshal(k)
				fmt.Fprintf(&b, "    {\"id\": %s, \"translation\": \"\"},\n", id)
			}
			t.Logf("%s: missing entries:\n%s", lang, b.String())
		}
		for id := range have {
			if _, used := keys[id]; !used {
				t.Errorf("%s: %q is translated but used nowhere", lang, id)
			}
		}
	}
	// English needs entries only for plural forms, and those of keys in use.
	lf, err := readLocale("locales/en.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lf.Messages {
		if _, used := keys[m.ID]; !used {
			t.Errorf("en: %q is translated but used nowhere", m.ID)
		}
	}
}

var verbRE = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

// verbs returns the format verbs of s, in order.
func verbs(s string) []string { return verbRE.FindAllString(s, -1) }

var placeholderRE = regexp.MustCompile(`\{\w+\}`)

// placeholders returns the script placeholders ({n}) of s, sorted.
func placeholders(s string) []string {
	p := placeholderRE.FindAllString(s, -1)
	sort.Strings(p)
	return p
}

// templateKeys returns the string arguments of .L.T in every template.
func templateKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := fs.ReadFile(templateFS, f)
		if err != nil {
			t.Fatal(err)
		}
		builtins := map[string]any{}
		for _, name := range []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice",
			"print", "printf", "println", "html", "js", "urlquery", "call"} {
			builtins[name] = fmt.Sprint
		}
		trees, err := parse.Parse(f, string(src), "{{", "}}", builtins)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		for _, tree := range trees {
			walkTemplate(tree.Root, func(c *parse.CommandNode) {
				if len(c.Args) < 2 || !isLT(c.Args[0]) {
					return
				}
				s, ok := c.Args[1].(*parse.StringNode)
				if !ok {
					t.Errorf("%s: .L.T with a key that is not a string constant: %s", f, c)
					return
				}
				keys[s.Text] = f
				n++
			})
		}
		// error.html shows texts translated by its caller.
		if n == 0 && !strings.HasSuffix(f, "error.html") {
			t.Errorf("%s: no .L.T call found; is the walker broken?", f)
		}
	}
	return keys
}

// isLT reports whether n is .L.T or $.L.T.
func isLT(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.FieldNode:
		return slices.Equal(n.Ident, []string{"L", "T"})
	case *parse.VariableNode:
		return slices.Equal(n.Ident, []string{"$", "L", "T"})
	}
	return false
}

func walkTemplate(n parse.Node, f func(*parse.CommandNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkTemplate(c, f)
		}
	case *parse.ActionNode:
		walkTemplate(n.Pipe, f)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkTemplate(c, f)
		}
	case *parse.CommandNode:
		f(n)
		for _, a := range n.Args {
			walkTemplate(a, f)
		}
	case *parse.IfNode:
		walkTemplate(n.Pipe, f)
		walkTemplate(n.List, f)
		walkTemplate(n.ElseList, f)
	case *parse.RangeNode:
		walkTemplate(n.Pipe, f)
		walkTemplate(n.List, f)
		walkTemplate(n.ElseList, f)
	case *parse.WithNode:
		walkTemplate(n.Pipe, f)
		walkTemplate(n.List, f)
		walkTemplate(n.ElseList, f)
	case *parse.TemplateNode:
		walkTemplate(n.Pipe, f)
	}
}

// goKeys returns the literal keys of msg(…) and .T(…) calls in this
// package, and the chat package's validation messages that pages show.
func goKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			name := ""
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			if name != "msg" && name != "T" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, err := strconv.Unquote(lit.Value)
				if err == nil {
					keys[s] = fset.Position(lit.Pos()).String()
				}
			} else if name == "msg" {
				t.Errorf("%s: msg with a key that is not a string literal", fset.Position(call.Pos()))
			}
			return true
		})
	}
	for _, f := range []string{"../username.go", "../nickname.go", "../store.go", "../apikey.go"} {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "Errorf" {
				return true
			}
			code, ok := call.Args[0].(*ast.Ident)
			if !ok || (code.Name != "EINVALID" && code.Name != "ECONFLICT") {
				return true
			}
			lit, ok := call.Args[1].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && !internalOnly(s) {
				keys[s] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	return keys
}

// internalOnly reports whether a chat package message never reaches a page
// (it is about data only chatd itself writes, or for operators).
func internalOnly(s string) bool {
	for _, p := range []string{"these accounts now count", "password hash", "session", "message ",
		"client id", "revocation", "user %d", "ttl", "created by"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

var scriptKeyRE = regexp.MustCompile(`\bt\(\s*"((?:[^"\\]|\\.)*)"|\btn\([^,]+,\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)"`)

// checkScriptKeys checks that jsMessages lists exactly the keys the scripts
// look up.
func checkScriptKeys(t *testing.T) {
	t.Helper()
	used := map[string]bool{}
	files, err := fs.Glob(staticFS, "static/*.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := fs.ReadFile(staticFS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range scriptKeyRE.FindAllStringSubmatch(string(src), -1) {
			for _, g := range m[1:] {
				if g == "" {
					continue
				}
				s, err := strconv.Unquote(`"` + g + `"`)
				if err != nil {
					t.Fatalf("%s: %q: %v", f, g, err)
				}
				used[s] = true
				if !slices.Contains(jsMessages, s) {
					t.Errorf("%s looks up %q, which is not in jsMessages (so no page carries its translation)", f, s)
				}
			}
		}
	}
	for _, k := range jsMessages {
		if !used[k] {
			t.Errorf("jsMessages lists %q, which no script looks up", k)
		}
	}
}

// TestLanguageChoice: the cookie wins, then Accept-Language (regional
// variants and quality values), then LANGUAGE.
func TestLanguageChoice(t *testing.T) {
	for _, tc := range []struct {
		def, cookie, accept, want string
	}{
		{"en", "", "", "en"},
		{"pt", "", "", "pt"},
		{"en", "", "es-MX,es;q=0.9,en;q=0.5", "es"},
		{"en", "", "pt-BR", "pt"},
		{"es", "", "de-DE,fr;q=0.8", "es"},
		{"en", "", "de, pt;q=0.5", "pt"},
		{"en", "pt", "es", "pt"},
		{"en", "xx", "es", "es"},
		{"es", "", "en-GB", "en"},
	} {
		tr, err := loadTranslations(tc.def)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{tr: tr}
		r := httptest.NewRequest("GET", "/chat/", nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Language", tc.accept)
		}
		if tc.cookie != "" {
			r.Header.Set("Cookie", LangCookie+"="+tc.cookie)
		}
		if got := s.requestLanguage(r); got != tc.want {
			t.Errorf("LANGUAGE=%s cookie %q Accept-Language %q: %s, want %s", tc.def, tc.cookie, tc.accept, got, tc.want)
		}
	}
	for in, want := range map[string]string{"es": "es", "pt_BR.UTF-8": "pt", "de_DE:de:pt": "pt", "en-US": "en", "de": "", "": ""} {
		got, ok := ParseLanguage(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseLanguage(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, err := loadTranslations("de"); err == nil {
		t.Error("LANGUAGE=de was accepted")
	}
}

// TestPluralsAndNumbers: counts take their language's plural form, and
// numbers its digit grouping.
func TestPluralsAndNumbers(t *testing.T) {
	tr, err := loadTranslations("en")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{tr: tr}
	for _, tc := range []struct {
		lang string
		n    int
		want string
	}{
		{"en", 1, "1 unread message"},
		{"en", 2, "2 unread messages"},
		{"es", 1, "1 mensaje sin leer"},
		{"es", 1200, "1.200 mensajes sin leer"},
		{"pt", 1, "1 mensagem não lida"},
		{"pt", 3, "3 mensagens não lidas"},
	} {
		if got := s.localizerFor(tc.lang).T("%d unread messages", tc.n); got != tc.want {
			t.Errorf("%s, %d: %q, want %q", tc.lang, tc.n, got, tc.want)
		}
	}
}
