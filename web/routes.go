package web

import "net/http"

// routes registers every route chatd serves. Go 1.22 patterns: {$} anchors
// a trailing slash, so /chat/lobby/x is a 404, not the lobby. Routes that
// depend on who is asking are wrapped in withSession, which puts the
// signed-in user (if any) in the request's context. State-changing routes
// are POST only; the CrossOriginProtection around the mux refuses them when
// they come from another site. Sockets pass the connection caps first
// (limitSockets) and sign-ups their throttle (limitSignup); see limits.go.
func (s *Server) routes(static http.Handler) {
	s.mux.Handle("GET /{$}", http.RedirectHandler("/chat/", http.StatusFound))
	s.mux.Handle("GET /chat/{$}", s.withSession(s.handleIndex))
	s.mux.Handle("GET /chat/{room}/{$}", s.withSession(s.handleRoom))
	s.mux.Handle("GET /ws/chat/{room}/{$}", s.limitSockets(s.withSession(s.handlePublicSocket)))

	s.mux.Handle("GET /accounts/login/{$}", s.withSession(s.handleLoginForm))
	s.mux.Handle("POST /accounts/login/{$}", s.withSession(s.handleLogin))
	s.mux.Handle("GET /accounts/logout/{$}", s.withSession(s.handleLogoutForm))
	s.mux.Handle("POST /accounts/logout/{$}", s.withSession(s.handleLogout))
	s.mux.Handle("GET /accounts/signup/{$}", s.withSession(s.handleSignupForm))
	s.mux.Handle("POST /accounts/signup/{$}", s.withSession(s.limitSignup(s.handleSignup)))
	s.mux.Handle("GET /accounts/profile/{$}", s.withSession(s.handleProfile))
	s.mux.Handle("POST /accounts/profile/{$}", s.withSession(s.handleSaveProfile))
	s.mux.HandleFunc("POST /i18n/setlang/{$}", s.handleSetLanguage)

	s.mux.Handle("GET /courses/{$}", s.withSession(s.handleCourses))
	s.mux.Handle("GET /courses/{id}/{$}", s.withSession(s.handleCourse))
	s.mux.Handle("GET /chat/room/{id}/{$}", s.withSession(s.handleCourseRoom))
	s.mux.Handle("GET /ws/chat/room/{id}/{$}", s.limitSockets(s.withSession(s.handleCourseSocket)))

	s.mux.Handle("GET /users/{$}", s.withSession(s.handleUsers))
	s.mux.Handle("GET /chat/dm/{username}/{$}", s.withSession(s.handleDM))
	s.mux.Handle("GET /ws/chat/dm/{username}/{$}", s.limitSockets(s.withSession(s.handleDMSocket)))

	s.mux.Handle("GET /api/chat/{room}/messages", s.withSession(s.handleHistory))
	s.mux.Handle("GET /api/chat/room/{id}/messages", s.withSession(s.handleHistory))
	s.mux.Handle("GET /api/chat/dm/{username}/messages", s.withSession(s.handleHistory))
	s.mux.Handle("GET /api/chat/{room}/presence", s.withSession(s.handlePresence))
	s.mux.Handle("GET /api/chat/room/{id}/presence", s.withSession(s.handlePresence))
	s.mux.Handle("GET /api/chat/dm/{username}/presence", s.withSession(s.handlePresence))

	// The publish API authenticates by API key, not by session (publish.go).
	s.mux.HandleFunc("POST /api/chat/{room}/messages", s.handlePublish)
	s.mux.HandleFunc("POST /api/chat/room/{id}/messages", s.handlePublish)
	s.mux.HandleFunc("POST /api/chat/dm/{a}/{b}/messages", s.handlePublish)
	s.mux.HandleFunc("POST /api/chat/messages", s.handlePublishBatch)

	// The admin pages (manage.go): administrators, and course owners for
	// their own course's enrollments.
	s.mux.Handle("GET /manage/{$}", s.withSession(s.handleManage))
	s.mux.Handle("GET /manage/courses/{$}", s.withSession(s.handleManageCourses))
	s.mux.Handle("POST /manage/courses/{$}", s.withSession(s.handleCreateCourse))
	s.mux.Handle("GET /manage/courses/{id}/{$}", s.withSession(s.handleManageCourse))
	s.mux.Handle("POST /manage/courses/{id}/enroll", s.withSession(s.handleEnroll))
	s.mux.Handle("POST /manage/courses/{id}/unenroll", s.withSession(s.handleUnenroll))
	s.mux.Handle("POST /manage/courses/{id}/rename", s.withSession(s.handleRenameCourse))
	s.mux.Handle("POST /manage/courses/{id}/delete", s.withSession(s.handleDeleteCourse))
	s.mux.Handle("GET /manage/users/{$}", s.withSession(s.handleManageUsers))
	s.mux.Handle("POST /manage/users/{username}/deactivate", s.withSession(s.handleSetActive(false)))
	s.mux.Handle("POST /manage/users/{username}/reactivate", s.withSession(s.handleSetActive(true)))
	s.mux.Handle("POST /manage/users/{username}/password", s.withSession(s.handleResetPassword))
	s.mux.Handle("GET /manage/keys/{$}", s.withSession(s.handleManageKeys))
	s.mux.Handle("POST /manage/keys/{$}", s.withSession(s.handleCreateKey))
	s.mux.Handle("POST /manage/keys/{id}/revoke", s.withSession(s.handleRevokeKey))
	s.mux.Handle("POST /api/chat/{room}/read", s.withSession(s.handleMarkRead))
	s.mux.Handle("POST /api/chat/room/{id}/read", s.withSession(s.handleMarkRead))
	s.mux.Handle("POST /api/chat/dm/{username}/read", s.withSession(s.handleMarkRead))
	s.mux.Handle("GET /api/unread", s.withSession(s.handleUnread))

	s.mux.Handle("GET /static/", cacheStatic(http.StripPrefix("/static/", static)))
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("/", s.withSession(s.handleNotFound))
}
