package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestDjangoCourseSettings checks DJANGO_COURSE_QUERY,
// DJANGO_COURSE_TITLE_QUERY and CHANNELS_REDIS_COURSE_GROUP: what each
// needs, and that -h documents them.
func TestDjangoCourseSettings(t *testing.T) {
	logins := map[string]string{"DJANGO_SECRET_KEY": "k", "DJANGO_DATABASE_URL": "sqlite:///srv/site/db.sqlite3"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const q = "SELECT 1 FROM courses_course_students WHERE course_id = :course AND user_id = :user"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(*config) bool
	}{
		{name: "course query", env: with(logins, "DJANGO_COURSE_QUERY", q, "DJANGO_COURSE_TITLE_QUERY", "SELECT title FROM courses_course WHERE id = :course"),
			check: func(c *config) bool { return c.django.CourseQuery == q && c.django.CourseTitleQuery != "" }},
		{name: "course query without logins", env: map[string]string{"DJANGO_COURSE_QUERY": q}, wantErr: "DJANGO_COURSE_QUERY needs the Django site's logins"},
		{name: "title query alone", env: with(logins, "DJANGO_COURSE_TITLE_QUERY", "SELECT title FROM courses_course WHERE id = :course"), wantErr: "DJANGO_COURSE_TITLE_QUERY is set but DJANGO_COURSE_QUERY is not"},
		{name: "course group", env: map[string]string{"CHANNEL_LAYER": "channels_redis", "REDIS_URL": "redis://r:6379/0", "CHANNELS_REDIS_COURSE_GROUP": "chat_{course}"},
			check: func(c *config) bool { g, ok := c.djangoConfig.courseGroups.Group("12"); return ok && g == "chat_12" }},
		{name: "no course group by default", env: map[string]string{"CHANNEL_LAYER": "channels_redis", "REDIS_URL": "redis://r:6379/0"},
			check: func(c *config) bool { return c.djangoConfig.courseGroups.IsZero() }},
		{name: "course group without channels_redis", env: map[string]string{"CHANNELS_REDIS_COURSE_GROUP": "chat_{course}"}, wantErr: "CHANNELS_REDIS_COURSE_GROUP needs CHANNEL_LAYER=channels_redis"},
		{name: "course group without {course}", env: map[string]string{"CHANNEL_LAYER": "channels_redis", "REDIS_URL": "redis://r:6379/0", "CHANNELS_REDIS_COURSE_GROUP": "chat_{room}"}, wantErr: "{course}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v %+v", c.django, c.djangoConfig)
			}
		})
	}
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, s := range []string{"-django-course-query", "DJANGO_COURSE_QUERY", "-django-course-title-query", "DJANGO_COURSE_TITLE_QUERY", "-channels-redis-course-group", "CHANNELS_REDIS_COURSE_GROUP"} {
		if !strings.Contains(help.String(), s) {
			t.Errorf("chatd -h does not mention %s", s)
		}
	}
}
