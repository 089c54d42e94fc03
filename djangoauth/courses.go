package djangoauth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Course membership from the Django site's own tables. The site says who
// may enter a course's chat room through two SQL queries the operator
// writes for its models (Config.CourseQuery and Config.CourseTitleQuery).
// For the educa tutorial's courses app (a Course with an owner and a
// students many-to-many field):
//
//	SELECT 1 FROM courses_course WHERE id = :course AND owner_id = :user
//	UNION ALL
//	SELECT 1 FROM courses_course_students WHERE course_id = :course AND user_id = :user
//
//	SELECT c.title, u.username FROM courses_course c
//	JOIN auth_user u ON u.id = c.owner_id WHERE c.id = :course
//
// :course and :user are bound parameters (never pasted into the text), and
// each may appear any number of times.

// ErrNoCourse is Course's answer for a course the title query does not
// find.
var ErrNoCourse = errors.New("djangoauth: no such course")

// Course is a course as the Django site's title query describes it.
type Course struct {
	ID    int64
	Title string
	Owner string // the owner's username, if the query returns it
}

// prepareCourses rewrites the configured course queries into the driver's
// parameter syntax and runs each once, so that a mistake (a misspelt
// table, a syntax error) stops chatd at start rather than refusing every
// student later.
func (v *Verifier) prepareCourses(ctx context.Context) error {
	if v.cfg.CourseTitleQuery != "" && v.cfg.CourseQuery == "" {
		return errors.New("djangoauth: a course title query needs the course query too")
	}
	if v.cfg.CourseQuery != "" {
		q, err := bindParams(v.cfg.CourseQuery, "course", "user")
		if err != nil {
			return fmt.Errorf("djangoauth: course query: %w", err)
		}
		v.courseQuery = q
		if _, err := v.CanEnterCourse(ctx, 0, "0"); err != nil {
			return err
		}
	}
	if v.cfg.CourseTitleQuery != "" {
		q, err := bindParams(v.cfg.CourseTitleQuery, "course")
		if err != nil {
			return fmt.Errorf("djangoauth: course title query: %w", err)
		}
		v.titleQuery = q
		if _, err := v.Course(ctx, 0); err != nil && !errors.Is(err, ErrNoCourse) {
			return err
		}
	}
	return nil
}

// HasCourses reports whether a course query is configured.
func (v *Verifier) HasCourses() bool { return v.courseQuery != "" }

// CanEnterCourse runs Config.CourseQuery: whether the Django user userID
// (a primary key, as the session stores it) may enter course courseID's
// chat room. It reports an error when no query is configured.
func (v *Verifier) CanEnterCourse(ctx context.Context, courseID int64, userID string) (bool, error) {
	if v.courseQuery == "" {
		return false, errors.New("djangoauth: no course query configured")
	}
	rows, err := v.db.QueryContext(ctx, v.courseQuery, courseID, userKey(userID))
	if err != nil {
		return false, fmt.Errorf("djangoauth: course query: %w", err)
	}
	defer rows.Close()
	ok := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("djangoauth: course query: %w", err)
	}
	return ok, nil
}

// Course runs Config.CourseTitleQuery for courseID. Without a title query
// every course exists and is called "Course <id>"; with one, a course it
// does not find is ErrNoCourse.
func (v *Verifier) Course(ctx context.Context, courseID int64) (*Course, error) {
	c := &Course{ID: courseID, Title: "Course " + strconv.FormatInt(courseID, 10)}
	if v.titleQuery == "" {
		return c, nil
	}
	rows, err := v.db.QueryContext(ctx, v.titleQuery, courseID)
	if err != nil {
		return nil, fmt.Errorf("djangoauth: course title query: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("djangoauth: course title query: %w", err)
	}
	if len(cols) != 1 && len(cols) != 2 {
		return nil, fmt.Errorf("djangoauth: course title query returns %d columns; it must return the title and optionally the owner's username", len(cols))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("djangoauth: course title query: %w", err)
		}
		return nil, ErrNoCourse
	}
	var title, owner sql.NullString
	if len(cols) == 1 {
		err = rows.Scan(&title)
	} else {
		err = rows.Scan(&title, &owner)
	}
	if err != nil {
		return nil, fmt.Errorf("djangoauth: course title query: %w", err)
	}
	if t := strings.TrimSpace(title.String); t != "" {
		c.Title = t
	}
	c.Owner = owner.String
	return c, nil
}

// userKey is a user's primary key as the database wants it: a number for
// an integer key, else the string (a UUID key).
func userKey(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return n
	}
	return id
}

// bindParams replaces the named parameters :name of query (outside quoted
// strings and identifiers) by $1, $2, ... in the order of names, which
// both PostgreSQL and SQLite read as positional parameters. Every name
// must appear; other :names, and ? placeholders, are refused. A "::" (a
// PostgreSQL cast) is left alone.
func bindParams(query string, names ...string) (string, error) {
	var b strings.Builder
	seen := make([]bool, len(names))
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				return "", fmt.Errorf("unterminated %c", c)
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
			continue
		case c == '?':
			return "", errors.New("use the named parameters :" + strings.Join(names, " and :") + ", not ?")
		case c == ':' && i+1 < len(query) && query[i+1] == ':':
			b.WriteString("::")
			i++
			continue
		case c == ':' && i+1 < len(query) && isIdent(query[i+1]):
			j := i + 1
			for j < len(query) && isIdent(query[j]) {
				j++
			}
			name := query[i+1 : j]
			k := -1
			for n, want := range names {
				if name == want {
					k = n
				}
			}
			if k < 0 {
				return "", fmt.Errorf("unknown parameter :%s (the parameters are :%s)", name, strings.Join(names, " and :"))
			}
			seen[k] = true
			b.WriteString("$" + strconv.Itoa(k+1))
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	for k, ok := range seen {
		if !ok {
			return "", fmt.Errorf("the query must use the parameter :%s", names[k])
		}
	}
	return b.String(), nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
