package web

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// Languages. Every page, label, message and error is written in English in
// the code (the English text is the message's key, as with gettext) and
// translated through a golang.org/x/text message catalog, built at start
// from locales/<lang>.json. Those files have the layout of gotext's
// messages.gotext.json: {"language": ..., "messages": [{"id": key,
// "translation": ...}]}, where a translation is a Go format string with the
// same verbs as its key, or a plural select ({"select": {"feature":
// "plural", "arg": 1, "cases": {"one": {"msg": ...}, "other": {"msg":
// ...}}}}). English needs a file only for plural forms.
// TestTranslations fails when a key used in a template, in Go code (T,
// msg) or in a script (jsMessages) lacks a translation, or when a
// translation's verbs differ from its key's.
//
// The language of a request is, in order: the chatd_lang cookie (set by
// the language form, POST /i18n/setlang/, as Django's set_language view),
// the best match of Accept-Language, then Config.Language (LANGUAGE).

//go:embed locales/*.json
var localeFS embed.FS

// Languages are the languages chatd speaks, with their own names for the
// language form.
var Languages = []struct {
	Tag  language.Tag
	Code string
	Name string
}{
	{language.English, "en", "English"},
	{language.Spanish, "es", "Español"},
	{language.Portuguese, "pt", "Português"},
}

// LangCookie remembers the language a person chose.
const LangCookie = "chatd_lang"

// ParseLanguage returns the code of the supported language that s names
// ("es", "pt-BR", "en_US", or a gettext-style list such as "pt_BR:pt:en",
// the first supported one winning), and whether one did.
func ParseLanguage(s string) (string, bool) {
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		part, _, _ = strings.Cut(part, ".") // en_US.UTF-8
		t, err := language.Parse(strings.ReplaceAll(part, "_", "-"))
		if err != nil {
			continue
		}
		base, _ := t.Base()
		for _, l := range Languages {
			if lb, _ := l.Tag.Base(); lb == base {
				return l.Code, true
			}
		}
	}
	return "", false
}

// translations holds a printer per supported language.
type translations struct {
	printers map[string]*message.Printer
	matcher  language.Matcher
	byCode   map[string]bool
	def      string
}

// loadTranslations builds the catalog from the embedded locale files.
// A file that does not parse is a programming error in the binary: it
// fails NewServer (and the tests).
func loadTranslations(def string) (*translations, error) {
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	files, err := localeFS.ReadDir("locales")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		lf, err := readLocale(path.Join("locales", f.Name()))
		if err != nil {
			return nil, err
		}
		tag := language.Make(lf.Language)
		for _, m := range lf.Messages {
			msg, err := m.catalogMessage()
			if err != nil {
				return nil, fmt.Errorf("web: %s: %q: %w", f.Name(), m.ID, err)
			}
			if err := b.Set(tag, m.ID, msg); err != nil {
				return nil, fmt.Errorf("web: %s: %q: %w", f.Name(), m.ID, err)
			}
		}
	}
	tr := &translations{printers: map[string]*message.Printer{}, byCode: map[string]bool{}, def: def}
	tags := []language.Tag{}
	for _, l := range Languages {
		if l.Code == def {
			tags = append([]language.Tag{l.Tag}, tags...) // the matcher's fallback is its first
		} else {
			tags = append(tags, l.Tag)
		}
		tr.printers[l.Code] = message.NewPrinter(l.Tag, message.Catalog(b))
		tr.byCode[l.Code] = true
	}
	if !tr.byCode[def] {
		return nil, fmt.Errorf("web: LANGUAGE %q is not one of en, es, pt", def)
	}
	tr.matcher = language.NewMatcher(tags)
	return tr, nil
}

// localeFile is one locales/<lang>.json.
type localeFile struct {
	Language string          `json:"language"`
	Messages []localeMessage `json:"messages"`
}

type localeMessage struct {
	ID          string          `json:"id"`
	Translation json.RawMessage `json:"translation"`
}

// pluralSelect is a translation that depends on a number's plural form.
type pluralSelect struct {
	Select struct {
		Feature string                          `json:"feature"`
		Arg     int                             `json:"arg"`
		Cases   map[string]struct{ Msg string } `json:"cases"`
	} `json:"select"`
}

// pluralForms are CLDR's plural categories, in the order Selectf tries
// them ("other" last: it always matches).
var pluralForms = []string{"zero", "one", "two", "few", "many", "other"}

func readLocale(name string) (*localeFile, error) {
	raw, err := localeFS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var lf localeFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lf); err != nil {
		return nil, fmt.Errorf("web: %s: %w", name, err)
	}
	return &lf, nil
}

// texts returns the translation's format strings: one, or one per plural
// case.
func (m localeMessage) texts() ([]string, error) {
	var s string
	if err := json.Unmarshal(m.Translation, &s); err == nil {
		return []string{s}, nil
	}
	var sel pluralSelect
	if err := json.Unmarshal(m.Translation, &sel); err != nil {
		return nil, fmt.Errorf("translation is neither a string nor a plural select: %w", err)
	}
	var out []string
	for _, f := range pluralForms {
		if c, ok := sel.Select.Cases[f]; ok {
			out = append(out, c.Msg)
		}
	}
	return out, nil
}

// catalogMessage returns the translation as a catalog message.
func (m localeMessage) catalogMessage() (catalog.Message, error) {
	var s string
	if err := json.Unmarshal(m.Translation, &s); err == nil {
		if s == "" {
			return nil, fmt.Errorf("empty translation")
		}
		return catalog.String(s), nil
	}
	var sel pluralSelect
	if err := json.Unmarshal(m.Translation, &sel); err != nil {
		return nil, fmt.Errorf("translation is neither a string nor a plural select: %w", err)
	}
	if sel.Select.Feature != "plural" || sel.Select.Arg < 1 {
		return nil, fmt.Errorf("a select must have feature \"plural\" and an arg from 1")
	}
	if _, ok := sel.Select.Cases["other"]; !ok {
		return nil, fmt.Errorf("a plural select needs an \"other\" case")
	}
	var cases []any
	for _, f := range pluralForms {
		if c, ok := sel.Select.Cases[f]; ok {
			cases = append(cases, f, c.Msg)
		}
	}
	if len(cases) != 2*len(sel.Select.Cases) {
		return nil, fmt.Errorf("unknown plural case; use %v", pluralForms)
	}
	return plural.Selectf(sel.Select.Arg, "%d", cases...), nil
}

// Localizer translates for one request.
type Localizer struct {
	Lang string // "en", "es" or "pt": the page's lang attribute
	p    *message.Printer
}

// T returns the translation of key, formatted with args as fmt.Sprintf
// would (numbers in the language's style).
func (l *Localizer) T(key string, args ...any) string { return l.p.Sprintf(key, args...) }

// Text returns the translation of a message made earlier with msg (or
// errorText).
func (l *Localizer) Text(t text) string {
	if !t.sentence {
		return l.p.Sprintf(t.key, t.args...)
	}
	args := make([]any, len(t.args))
	for i, a := range t.args {
		if s, ok := a.(string); ok && slices.Contains(fieldNames, s) {
			a = l.p.Sprintf(s)
		}
		args[i] = a
	}
	return asSentence(l.p.Sprintf(t.key, args...))
}

// text is a message whose language is not known yet where it is made (a
// reason that ends up on a page, in a log or on the wire): its English
// format, which is its catalog key, and its arguments.
type text struct {
	key      string
	args     []any
	sentence bool // a chat.Error's message: capitalise it, end it with a full stop
}

// msg returns the message key formatted with args, to be translated when
// shown (Localizer.Text) or written in English (text.English).
func msg(key string, args ...any) text { return text{key: key, args: args} }

// plain returns s as a message shown as it is, in every language: for
// texts that come from elsewhere (a channel layer's reason).
func plain(s string) text { return msg("%s", s) }

// English returns the message in English, for logs, frames and plain-text
// answers to programs.
func (t text) English() string {
	s := fmt.Sprintf(t.key, t.args...)
	if t.sentence {
		s = asSentence(s)
	}
	return s
}

// asSentence makes s start with a capital and end with a full stop.
func asSentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

type localizerKey struct{}

// localizer returns the request's Localizer (the default language's if the
// middleware did not run, as in some tests).
func (s *Server) localizer(r *http.Request) *Localizer {
	if l, ok := r.Context().Value(localizerKey{}).(*Localizer); ok {
		return l
	}
	return s.localizerFor(s.tr.def)
}

func (s *Server) localizerFor(code string) *Localizer {
	return &Localizer{Lang: code, p: s.tr.printers[code]}
}

// requestLanguage returns the code of r's language: its cookie, then
// Accept-Language, then the default.
func (s *Server) requestLanguage(r *http.Request) string {
	if c, err := r.Cookie(LangCookie); err == nil && s.tr.byCode[c.Value] {
		return c.Value
	}
	if al := r.Header.Get("Accept-Language"); al != "" {
		tags, _, err := language.ParseAcceptLanguage(al)
		if err == nil && len(tags) > 0 {
			_, i, conf := s.tr.matcher.Match(tags...)
			if conf != language.No {
				return s.matchedCode(i)
			}
		}
	}
	return s.tr.def
}

// matchedCode returns the code of the matcher's i-th tag (the default is
// first, then the others in Languages order).
func (s *Server) matchedCode(i int) string {
	codes := []string{s.tr.def}
	for _, l := range Languages {
		if l.Code != s.tr.def {
			codes = append(codes, l.Code)
		}
	}
	return codes[i]
}

// withLanguage puts the request's Localizer in its context (render tells
// caches that pages vary by language).
func (s *Server) withLanguage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc := s.localizerFor(s.requestLanguage(r))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), localizerKey{}, loc)))
	})
}

// handleSetLanguage remembers the language chosen in the language form
// (a cookie for a year) and goes back to the page it was sent from.
func (s *Server) handleSetLanguage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("The form could not be read."))
		return
	}
	code := r.PostForm.Get("language")
	if !s.tr.byCode[code] {
		s.errorPage(w, r, http.StatusBadRequest, msg("Bad request"), msg("Choose one of the languages in the list."))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     LangCookie,
		Value:    code,
		Path:     "/",
		MaxAge:   365 * 24 * 3600,
		HttpOnly: true,
		Secure:   s.cfg.Production,
		SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, safeNext(r.PostForm.Get("next"), "/chat/"), http.StatusSeeOther)
}

// jsMessages are the keys of the strings the pages' scripts show; every
// page carries their translations as JSON (a <script type=
// "application/json" id="i18n"> block, since the Content-Security-Policy
// allows no inline script), and the scripts look them up with t("...").
// Placeholders are {name}, filled in by the script; a pair "… message" /
// "… messages" is chosen by the script with Intl.PluralRules.
var jsMessages = []string{
	// status
	"connecting…", "reconnecting…", "connected", "offline, retrying in {n} s", "disconnected",
	"connected, but the server cannot deliver messages right now",
	// the log
	"Me", "someone", "guest", "teacher", "sending…", "not sent",
	"Not sent: {reason}", "Retry", "Edit", "Discard",
	"Retry sending this message", "Edit this message", "Discard this message",
	"Send or clear what is in the message box first; the text stays in the log.",
	"loading older messages…", "older messages were removed", "could not load older messages; scroll up to try again",
	"Today", "Yesterday",
	// refusals, by error code
	"The chat server is busy, your message was not sent — it will be retried.",
	"You are sending messages too fast; this one will be sent again in a moment.",
	"The message is empty.", "The message is too long (at most 4000 characters).",
	"The message could not be read by the server.",
	"The server refused this message: {reason}",
	// the connection ends
	"You were removed from this course, so its chat room is closed to you. Ask the teacher if you think this is a mistake.",
	"This course was deleted, and its chat room with it.",
	"You logged out (in this or another tab). Log in again to chat.",
	"Your session ended. Log in again to chat.",
	"This account was deleted.",
	"The connection was closed: {reason}. Reload the page to try again.",
	"Back to my courses", "Log in",
	// room lists and badges
	"{n} unread message", "{n} unread messages",
	// room picker
	"A room name is 1 to 100 characters: letters, digits, '_', '-' or '.' (not only dots).",
}

// jsTranslations returns the scripts' strings in l's language.
func (l *Localizer) jsTranslations() map[string]string {
	out := make(map[string]string, len(jsMessages))
	for _, k := range jsMessages {
		out[k] = l.p.Sprintf(k)
	}
	return out
}
