package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/password"
)

// adminCommands are the subcommands that manage accounts and courses, in the
// order "chatd -h" lists them. runAdmin runs them.
var adminCommands = []string{"createuser", "setpassword", "deactivate", "reactivate", "grantadmin", "revokeadmin",
	"createcourse", "renamecourse", "deletecourse", "enroll", "unenroll", "listusers", "listcourses", "members",
	"createkey", "listkeys", "revokekey"}

// adminCommand describes one admin subcommand for its usage text.
type adminCommand struct {
	args    string // after "chatd NAME"
	summary string // one line, for chatd -h
	detail  string // more, for chatd NAME -h
}

var adminHelp = map[string]adminCommand{
	"createuser": {
		args:    "[--admin] [--display-name NAME] [--password-stdin] USERNAME",
		summary: "create an account",
		detail: "The password is read from standard input (one line) with --password-stdin,\n" +
			"otherwise from the CHATD_PASSWORD environment variable; it is never a flag,\n" +
			"so it does not show in ps or the shell history. Usernames are 1-150 letters,\n" +
			"digits and @ . + - _ of one script, unique regardless of case, width and\n" +
			"look-alike letters; guests' names (guest-...), me, you, someone, anonymous,\n" +
			"system and chatd are reserved (docs/accounts.md).",
	},
	"setpassword": {
		args:    "[--password-stdin] USERNAME",
		summary: "set a user's password and sign them out everywhere",
		detail: "The password is read as for createuser: one line of standard input with\n" +
			"--password-stdin, otherwise CHATD_PASSWORD.",
	},
	"deactivate": {
		args:    "USERNAME",
		summary: "stop a user from signing in and close their sockets",
		detail: "Their sessions end and their open sockets close on every server within\n" +
			"ACCESS_RECHECK_INTERVAL (1 s by default). Their messages, courses and\n" +
			"enrollments stay; chatd reactivate undoes it.",
	},
	"reactivate": {
		args:    "USERNAME",
		summary: "let a deactivated user sign in again",
	},
	"grantadmin": {
		args:    "USERNAME",
		summary: "make a user an administrator (the /manage/ pages)",
	},
	"revokeadmin": {
		args:    "USERNAME",
		summary: "take a user's administrator rights away",
	},
	"createcourse": {
		args:    "--owner USERNAME TITLE...",
		summary: "create a course owned by USERNAME and print its id",
		detail:  "The owner may always enter the course's chat room.",
	},
	"renamecourse": {
		args:    "COURSE_ID TITLE...",
		summary: "change a course's title",
	},
	"deletecourse": {
		args:    "COURSE_ID",
		summary: "delete a course with its enrollments and its chat history",
		detail: "Open sockets in the course's room close on every server within\n" +
			"ACCESS_RECHECK_INTERVAL (1 s by default).",
	},
	"enroll": {
		args:    "COURSE_ID USERNAME",
		summary: "let a user into a course's chat room",
		detail:  "A course's owner always may enter its room and is not enrolled as a student.",
	},
	"unenroll": {
		args:    "COURSE_ID USERNAME",
		summary: "remove a user from a course",
		detail:  "The user's open sockets in the course room are closed.",
	},
	"listusers": {
		summary: "list accounts",
	},
	"listcourses": {
		summary: "list courses with their owners and number of students",
	},
	"members": {
		args:    "COURSE_ID",
		summary: "list a course's owner and students",
	},
	"createkey": {
		args:    "--name NAME [--rooms PATTERNS] [--bot BOT]",
		summary: "make an API key for the publish API and print its secret once",
		detail: "The key posts as the bot \"bot:BOT\" (BOT defaults to NAME) into the rooms\n" +
			"whose keys match one of PATTERNS, comma-separated globs: chat:lobby,\n" +
			"chat:announce-*, chat:* (every public room, the default), course:12,\n" +
			"course:*, dm:* (every private room), * (every room). Only a hash of the\n" +
			"secret is stored: it is printed now and never again. See docs/api.md.",
	},
	"listkeys": {
		summary: "list API keys (the start of each secret only), revoked ones too",
	},
	"revokekey": {
		args:    "NAME | --id ID",
		summary: "revoke an API key: it stops working at once",
	},
}

// adminEnv is what the admin commands work with.
type adminEnv struct {
	store  chat.Store // opened by parse with open, unless set beforehand
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer // usage errors; nil discards them
	getenv func(string) string

	// open, if not nil, opens the store that the command's -database-url
	// and -data-dir (DATABASE_URL, DATA_DIR) select, once its command line
	// has parsed; close closes it.
	open        func(ctx context.Context, databaseURL, dataDir string) (chat.Store, error)
	databaseURL string
	dataDir     string
	layer       *layerSettings // unenroll's channel layer; nil for the others

	// unenrolled, if not nil, is called after a successful unenroll, so that
	// the caller can close the user's open sockets in the course room. An
	// error it returns is reported after the store change, which stays.
	unenrolled func(ctx context.Context, courseID, userID int64) error
}

// runAdmin runs the admin subcommand name with its arguments against st,
// reading CHATD_PASSWORD from the process environment. It prints results to
// stdout, and returns errors whose text is meant for the operator. After
// "-h" it prints the command's usage to stdout and returns flag.ErrHelp.
func runAdmin(ctx context.Context, name string, args []string, st chat.Store, stdin io.Reader, stdout io.Writer) error {
	a := &adminEnv{store: st, stdin: stdin, stdout: stdout, getenv: os.Getenv}
	return a.run(ctx, name, args)
}

// run is runAdmin with the environment and hooks of a.
func (a *adminEnv) run(ctx context.Context, name string, args []string) error {
	if a.getenv == nil {
		a.getenv = func(string) string { return "" }
	}
	if a.stderr == nil {
		a.stderr = io.Discard
	}
	var err error
	switch name {
	case "createuser":
		err = a.createUser(ctx, args)
	case "setpassword":
		err = a.setPassword(ctx, args)
	case "deactivate", "reactivate":
		err = a.setActive(ctx, name, args)
	case "grantadmin", "revokeadmin":
		err = a.setAdmin(ctx, name, args)
	case "createcourse":
		err = a.createCourse(ctx, args)
	case "renamecourse":
		err = a.renameCourse(ctx, args)
	case "deletecourse":
		err = a.deleteCourse(ctx, args)
	case "createkey":
		err = a.createKey(ctx, args)
	case "listkeys":
		err = a.listKeys(ctx, args)
	case "revokekey":
		err = a.revokeKey(ctx, args)
	case "enroll":
		err = a.enroll(ctx, args, true)
	case "unenroll":
		err = a.enroll(ctx, args, false)
	case "listusers":
		err = a.listUsers(ctx, args)
	case "listcourses":
		err = a.listCourses(ctx, args)
	case "members":
		err = a.members(ctx, args)
	default:
		return fmt.Errorf("unknown admin command %q (one of %s)", name, strings.Join(adminCommands, ", "))
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &adminError{cmd: name, err: err}
}

// adminError is an admin command's failure: the command's name and, for an
// application error, only its message, which is written for people.
type adminError struct {
	cmd string
	err error
}

func (e *adminError) Error() string {
	var ce *chat.Error
	if errors.As(e.err, &ce) {
		return e.cmd + ": " + ce.Message
	}
	return e.cmd + ": " + e.err.Error()
}

func (e *adminError) Unwrap() error { return e.err }

// adminUsage writes the admin commands with their summaries, for chatd -h.
func adminUsage(w io.Writer) {
	for _, name := range adminCommands {
		h := adminHelp[name]
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace("chatd "+name+" "+h.args), h.summary)
	}
}

// newFlagSet returns the flag set of admin command name, with the flags
// every admin command takes: -database-url and -data-dir, whose defaults
// come from DATABASE_URL and DATA_DIR, and for unenroll the channel layer's
// (-channel-layer, -redis-url, -channel-prefix), through which it closes the
// user's sockets. Parse errors are returned, not printed; parse prints the
// usage.
func (a *adminEnv) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage printed by parse
	fs.Usage = func() {}
	e := &envFlags{fs: fs, getenv: a.getenv}
	e.storeFlags(&a.databaseURL, &a.dataDir)
	if name == "unenroll" {
		a.layer = &layerSettings{}
		e.layerFlags(a.layer, prefixFromDatabase)
	}
	return fs
}

// usageErr prints err and the command's usage to stderr and returns a
// *usageError (exit status 2).
func (a *adminEnv) usageErr(fs *flag.FlagSet, err error) error {
	fmt.Fprintf(a.stderr, "chatd %s: %v\n\n", fs.Name(), err)
	a.usageTo(a.stderr, fs)
	return &usageError{err}
}

// parse parses args with fs, allowing flags after positional arguments
// ("createuser alice --admin"); "--" ends the flags. It prints the usage for
// -h and returns flag.ErrHelp. It returns the positional arguments: exactly n
// of them, or at least n when atLeast. A bad command line is a *usageError.
// Once the command line is right it checks the channel layer's settings (of
// unenroll) and opens the store if a.open is set.
func (a *adminEnv) parse(ctx context.Context, fs *flag.FlagSet, args []string, n int, atLeast bool) ([]string, error) {
	pos, err := a.parseArgs(fs, args, n, atLeast)
	if err != nil {
		return nil, err
	}
	if a.layer != nil {
		if err := a.layer.validate(fs); err != nil {
			return nil, err
		}
	}
	if a.store == nil && a.open != nil {
		st, err := a.open(ctx, a.databaseURL, a.dataDir)
		if err != nil {
			return nil, err
		}
		a.store = st
	}
	return pos, nil
}

func (a *adminEnv) parseArgs(fs *flag.FlagSet, args []string, n int, atLeast bool) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			a.usage(fs)
			return nil, flag.ErrHelp
		} else if err != nil {
			return nil, a.usageErr(fs, fmt.Errorf("%v (see chatd %s -h)", err, fs.Name()))
		}
		rest := fs.Args()
		if endedByDashDash(fs, args[:len(args)-len(rest)]) {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	h := adminHelp[fs.Name()]
	if len(pos) > n && !atLeast {
		return nil, a.usageErr(fs, fmt.Errorf("unexpected argument %q; usage: %s", pos[n], strings.TrimSpace("chatd "+fs.Name()+" "+h.args)))
	}
	if len(pos) < n {
		return nil, a.usageErr(fs, fmt.Errorf("missing arguments; usage: chatd %s %s", fs.Name(), h.args))
	}
	return pos, nil
}

// endedByDashDash reports whether the arguments fs.Parse consumed ended with
// a "--" that ends the flags, rather than one that is a flag's value
// ("--display-name --").
func endedByDashDash(fs *flag.FlagSet, consumed []string) bool {
	n := len(consumed)
	if n == 0 || consumed[n-1] != "--" {
		return false
	}
	if n >= 2 && strings.HasPrefix(consumed[n-2], "-") && !strings.Contains(consumed[n-2], "=") {
		if f := fs.Lookup(strings.TrimLeft(consumed[n-2], "-")); f != nil {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			return ok && b.IsBoolFlag()
		}
	}
	return true
}

func (a *adminEnv) usage(fs *flag.FlagSet) { a.usageTo(a.stdout, fs) }

func (a *adminEnv) usageTo(w io.Writer, fs *flag.FlagSet) {
	h := adminHelp[fs.Name()]
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("chatd "+fs.Name()+" "+h.args), capitalize(h.summary))
	if h.detail != "" {
		fmt.Fprintf(w, "\n%s\n", h.detail)
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (a *adminEnv) createUser(ctx context.Context, args []string) error {
	fs := a.newFlagSet("createuser")
	admin := fs.Bool("admin", false, "make the user an administrator")
	display := fs.String("display-name", "", "the name shown in chat (default: the username)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	pos, err := a.parse(ctx, fs, args, 1, false)
	if err != nil {
		return err
	}
	u := &chat.User{Username: chat.NormalizeUsername(pos[0]), DisplayName: strings.TrimSpace(*display), IsAdmin: *admin}
	if err := chat.CheckNewUsername(ctx, a.store, u.Username, false); err != nil {
		return err
	}
	if err := chat.ValidateDisplayName(u.DisplayName); err != nil {
		return err
	}
	pw, err := a.password(*fromStdin)
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	if err := a.store.CreateUser(ctx, u, hash); err != nil {
		if chat.ErrorCode(err) == chat.ECONFLICT {
			return chat.Errorf(chat.ECONFLICT, "a user named %q, or one too like it, already exists (usernames ignore case, width and look-alike letters; see chatd listusers)", u.Username)
		}
		return err
	}
	role := "user"
	if u.IsAdmin {
		role = "admin user"
	}
	fmt.Fprintf(a.stdout, "created %s %q (id %d)\n", role, u.Username, u.ID)
	return nil
}

func (a *adminEnv) setPassword(ctx context.Context, args []string) error {
	fs := a.newFlagSet("setpassword")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	pos, err := a.parse(ctx, fs, args, 1, false)
	if err != nil {
		return err
	}
	u, err := a.user(ctx, pos[0])
	if err != nil {
		return err
	}
	pw, err := a.password(*fromStdin)
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	if err := a.store.SetPassword(ctx, u.ID, hash); err != nil {
		return err
	}
	// Whoever knew the old password must not stay signed in.
	if err := a.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "password of %q changed; their sessions are ended\n", u.Username)
	return nil
}

// password returns the new user's password: the first line of stdin, or
// CHATD_PASSWORD.
func (a *adminEnv) password(fromStdin bool) (string, error) {
	if fromStdin {
		if a.stdin == nil {
			return "", errors.New("--password-stdin: no standard input")
		}
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", errors.New("empty password on standard input; an empty password is refused")
		}
		return line, nil
	}
	// getenv cannot tell an empty variable from an unset one; both are
	// refused the same way.
	pw := a.getenv("CHATD_PASSWORD")
	if pw == "" {
		return "", errors.New("no password given: pipe it in with --password-stdin or set CHATD_PASSWORD (an empty password is refused)")
	}
	return pw, nil
}

func (a *adminEnv) createCourse(ctx context.Context, args []string) error {
	fs := a.newFlagSet("createcourse")
	owner := fs.String("owner", "", "username of the course's owner (required)")
	pos, err := a.parse(ctx, fs, args, 0, true)
	if err != nil {
		return err
	}
	if *owner == "" {
		return fmt.Errorf("--owner USERNAME is required; usage: chatd createcourse %s", adminHelp["createcourse"].args)
	}
	title := strings.TrimSpace(strings.Join(pos, " "))
	if title == "" {
		return fmt.Errorf("a course title is required; usage: chatd createcourse %s", adminHelp["createcourse"].args)
	}
	u, err := a.user(ctx, *owner)
	if err != nil {
		return err
	}
	c := &chat.Course{Title: title, OwnerID: u.ID}
	if err := a.store.CreateCourse(ctx, c); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, c.ID)
	return nil
}

// user looks up a user by name with an operator-friendly error.
func (a *adminEnv) user(ctx context.Context, username string) (*chat.User, error) {
	u, err := a.store.UserByUsername(ctx, username)
	if chat.ErrorCode(err) == chat.ENOTFOUND {
		return nil, chat.Errorf(chat.ENOTFOUND, "no user named %q (see chatd listusers)", username)
	}
	return u, err
}

// course parses a course id and looks the course up.
func (a *adminEnv) course(ctx context.Context, arg string) (*chat.Course, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return nil, chat.Errorf(chat.EINVALID, "bad course id %q: want a positive whole number (see chatd listcourses)", arg)
	}
	c, err := a.store.CourseByID(ctx, id)
	if chat.ErrorCode(err) == chat.ENOTFOUND {
		return nil, chat.Errorf(chat.ENOTFOUND, "no course with id %d (see chatd listcourses)", id)
	}
	return c, err
}

// enroll runs enroll (add) and unenroll (!add).
func (a *adminEnv) enroll(ctx context.Context, args []string, add bool) error {
	name := "unenroll"
	if add {
		name = "enroll"
	}
	pos, err := a.parse(ctx, a.newFlagSet(name), args, 2, false)
	if err != nil {
		return err
	}
	c, err := a.course(ctx, pos[0])
	if err != nil {
		return err
	}
	u, err := a.user(ctx, pos[1])
	if err != nil {
		return err
	}
	if add {
		if u.ID == c.OwnerID {
			return chat.Errorf(chat.ECONFLICT, "%q owns course %d (%s): an owner always may enter the course's room and is not enrolled as a student of their own course", u.Username, c.ID, c.Title)
		}
		err = a.store.Enroll(ctx, c.ID, u.ID)
		if chat.ErrorCode(err) == chat.ECONFLICT {
			return chat.Errorf(chat.ECONFLICT, "%q is already enrolled in course %d (%s)", u.Username, c.ID, c.Title)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "enrolled %q in course %d (%s)\n", u.Username, c.ID, c.Title)
		return nil
	}
	err = a.store.Unenroll(ctx, c.ID, u.ID)
	if chat.ErrorCode(err) == chat.ENOTFOUND {
		msg := fmt.Sprintf("%q is not enrolled in course %d (%s)", u.Username, c.ID, c.Title)
		if u.ID == c.OwnerID {
			msg += "; they own it"
		}
		return chat.Errorf(chat.ENOTFOUND, "%s", msg)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "unenrolled %q from course %d (%s)\n", u.Username, c.ID, c.Title)
	if a.unenrolled != nil {
		if err := a.unenrolled(ctx, c.ID, u.ID); err != nil {
			return fmt.Errorf("unenrolled, but closing the user's open sockets failed: %w", err)
		}
	}
	return nil
}

func (a *adminEnv) listUsers(ctx context.Context, args []string) error {
	if _, err := a.parse(ctx, a.newFlagSet("listusers"), args, 0, false); err != nil {
		return err
	}
	users, err := a.store.ListUsers(ctx)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		fmt.Fprintln(a.stdout, "no users yet (see chatd createuser -h)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tADMIN\tACTIVE\tDISPLAY NAME")
	for _, u := range users {
		active := "yes"
		if u.Deactivated {
			active = "no"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", u.ID, u.Username, yes(u.IsAdmin), active, u.DisplayName)
	}
	return tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func (a *adminEnv) listCourses(ctx context.Context, args []string) error {
	if _, err := a.parse(ctx, a.newFlagSet("listcourses"), args, 0, false); err != nil {
		return err
	}
	courses, err := a.store.ListCourses(ctx)
	if err != nil {
		return err
	}
	if len(courses) == 0 {
		fmt.Fprintln(a.stdout, "no courses yet (see chatd createcourse -h)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tSTUDENTS\tTITLE")
	for _, c := range courses {
		members, err := a.store.CourseMembers(ctx, c.ID)
		if chat.ErrorCode(err) == chat.ENOTFOUND {
			continue // deleted meanwhile
		} else if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", c.ID, c.OwnerUsername, len(members), c.Title)
	}
	return tw.Flush()
}

func (a *adminEnv) members(ctx context.Context, args []string) error {
	pos, err := a.parse(ctx, a.newFlagSet("members"), args, 1, false)
	if err != nil {
		return err
	}
	c, err := a.course(ctx, pos[0])
	if err != nil {
		return err
	}
	members, err := a.store.CourseMembers(ctx, c.ID)
	if err != nil {
		return err
	}
	owner, err := a.store.UserByID(ctx, c.OwnerID)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "course %d: %s\n", c.ID, c.Title)
	tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tUSERNAME\tDISPLAY NAME")
	fmt.Fprintf(tw, "owner\t%s\t%s\n", owner.Username, owner.DisplayName)
	for _, u := range members {
		fmt.Fprintf(tw, "student\t%s\t%s\n", u.Username, u.DisplayName)
	}
	return tw.Flush()
}
