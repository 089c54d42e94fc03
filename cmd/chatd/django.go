package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/channelsredis"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/djangoauth"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/web"
	"github.com/chatd/chat/ws"
)

// layerChannelsRedis is the CHANNEL_LAYER that shares public rooms with a
// Django Channels site through channels_redis (docs/django.md).
const layerChannelsRedis = "channels_redis"

// djangoConfig is the part of chatd's configuration for running beside a
// Django site: its channel layer's settings (as in the site's
// CHANNEL_LAYERS) and its sessions.
type djangoConfig struct {
	CRLayer       string // core | pubsub
	CRHosts       string // comma-separated redis URLs
	CRPrefix      string
	CRCapacity    int
	CRExpiry      int // seconds
	CRGroupExpiry int // seconds
	CRSerializer  string
	CRRandomLen   int
	CRGroup       string
	CRCourseGroup string // "": course rooms are not bridged
	CREventType   string
	CRUser        string
	CRKeys        []string // CHANNELS_REDIS_SYMMETRIC_ENCRYPTION_KEYS (environment only: a secret)

	groups       channelsredis.GroupPattern
	courseGroups channelsredis.GroupPattern // zero: course rooms are not bridged
	hosts        []string
}

// bindDjango registers the Django settings' flags.
func (e *envFlags) bindDjango(c *djangoConfig) {
	e.String(&c.CRLayer, "channels-redis-layer", "CHANNELS_REDIS_LAYER", "core", "with CHANNEL_LAYER=channels_redis: core (channels_redis.core.RedisChannelLayer) or pubsub (channels_redis.pubsub.RedisPubSubChannelLayer), as the Django site's CHANNEL_LAYERS BACKEND")
	e.String(&c.CRHosts, "channels-redis-hosts", "CHANNELS_REDIS_HOSTS", "", "the Django layer's hosts as comma-separated redis:// URLs, in the same order (sharding); default REDIS_URL")
	e.String(&c.CRPrefix, "channels-redis-prefix", "CHANNELS_REDIS_PREFIX", channelsredis.DefaultPrefix, "the Django layer's prefix")
	e.Int(&c.CRCapacity, "channels-redis-capacity", "CHANNELS_REDIS_CAPACITY", channelsredis.DefaultCapacity, "the Django layer's capacity: messages one Daphne/worker inbox holds before group_send drops (core)")
	e.Int(&c.CRExpiry, "channels-redis-expiry", "CHANNELS_REDIS_EXPIRY", int(channelsredis.DefaultExpiry/time.Second), "the Django layer's expiry in seconds (core; also the encrypted messages' age limit minus 10 s)")
	e.Int(&c.CRGroupExpiry, "channels-redis-group-expiry", "CHANNELS_REDIS_GROUP_EXPIRY", int(channelsredis.DefaultGroupExpiry/time.Second), "the Django layer's group_expiry in seconds (core); chatd re-adds its memberships well within it")
	e.String(&c.CRSerializer, "channels-redis-serializer", "CHANNELS_REDIS_SERIALIZER", channelsredis.SerializerMsgpack, "the Django layer's serializer_format: msgpack or json")
	e.Int(&c.CRRandomLen, "channels-redis-random-prefix-length", "CHANNELS_REDIS_RANDOM_PREFIX_LENGTH", channelsredis.DefaultRandomPrefix, "the Django layer's random_prefix_length (core)")
	e.String(&c.CRGroup, "channels-redis-group", "CHANNELS_REDIS_GROUP", channelsredis.DefaultGroupPattern, "the Django group of a public room; {room} is the room's name")
	e.String(&c.CRCourseGroup, "channels-redis-course-group", "CHANNELS_REDIS_COURSE_GROUP", "", "with CHANNEL_LAYER=channels_redis: the Django group of a course's chat room, {course} being its id (the educa tutorial's is chat_{course}); empty: course rooms are not bridged. Public rooms whose group would be a course's are then refused")
	e.String(&c.CREventType, "channels-redis-event-type", "CHANNELS_REDIS_EVENT_TYPE", channelsredis.DefaultEventType, "the type of the events chatd sends to Django groups (the consumer's handler: chat_message or chat.message call chat_message())")
	e.String(&c.CRUser, "channels-redis-user", "CHANNELS_REDIS_USER", "django", "the sender's name in chatd for a Django event without a valid \"user\" key")
	if v := strings.TrimSpace(e.getenv("CHANNELS_REDIS_SYMMETRIC_ENCRYPTION_KEYS")); v != "" {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.CRKeys = append(c.CRKeys, k)
			}
		}
	}
}

// validate checks the Django settings; redisURL is chatd's own Redis.
func (c *djangoConfig) validate(kind string, redisURL *string) error {
	if kind != layerChannelsRedis {
		if strings.TrimSpace(c.CRCourseGroup) != "" {
			return fmt.Errorf("CHANNELS_REDIS_COURSE_GROUP needs CHANNEL_LAYER=channels_redis (it is %s)", kind)
		}
		return nil
	}
	switch c.CRLayer {
	case channelsredis.KindCore, channelsredis.KindPubSub:
	default:
		return fmt.Errorf("CHANNELS_REDIS_LAYER must be core or pubsub, not %q", c.CRLayer)
	}
	for _, h := range strings.Split(c.CRHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if err := checkRedisURL(h); err != nil {
				return fmt.Errorf("CHANNELS_REDIS_HOSTS: %w", err)
			}
			c.hosts = append(c.hosts, h)
		}
	}
	if len(c.hosts) == 0 && *redisURL != "" {
		c.hosts = []string{*redisURL}
	}
	if len(c.hosts) == 0 {
		return errors.New("CHANNEL_LAYER=channels_redis needs the Django layer's Redis: set CHANNELS_REDIS_HOSTS or REDIS_URL")
	}
	if *redisURL == "" {
		*redisURL = c.hosts[0] // chatd's own traffic goes to the first host
	}
	g, err := channelsredis.ParseGroupPattern(c.CRGroup)
	if err != nil {
		return fmt.Errorf("CHANNELS_REDIS_GROUP: %w", err)
	}
	c.groups = g
	if p := strings.TrimSpace(c.CRCourseGroup); p != "" {
		if c.courseGroups, err = channelsredis.ParseCourseGroupPattern(p); err != nil {
			return fmt.Errorf("CHANNELS_REDIS_COURSE_GROUP: %w", err)
		}
	}
	switch {
	case c.CRCapacity < 1:
		return errors.New("CHANNELS_REDIS_CAPACITY must be at least 1")
	case c.CRExpiry < 1:
		return errors.New("CHANNELS_REDIS_EXPIRY must be at least 1")
	case c.CRGroupExpiry < 60:
		return errors.New("CHANNELS_REDIS_GROUP_EXPIRY must be at least 60")
	case c.CRRandomLen < 0:
		return errors.New("CHANNELS_REDIS_RANDOM_PREFIX_LENGTH must not be negative")
	case c.CRSerializer != channelsredis.SerializerMsgpack && c.CRSerializer != channelsredis.SerializerJSON:
		return fmt.Errorf("CHANNELS_REDIS_SERIALIZER must be msgpack or json, not %q", c.CRSerializer)
	case strings.HasPrefix(c.CREventType, "_") || c.CREventType == "":
		return errors.New("CHANNELS_REDIS_EVENT_TYPE must be a handler name such as chat_message")
	}
	if err := chat.ValidateUsername(c.CRUser); err != nil {
		return fmt.Errorf("CHANNELS_REDIS_USER: %s", chat.ErrorMessage(err))
	}
	return nil
}

// originDjango is the core.Post origin of messages that came from the
// Django side: no connection has that id, and the publisher does not send
// them back to Django.
const originDjango = ^uint64(0)

// djangoPublisher is the core.Publisher in channels_redis mode: it
// publishes every stored message to chatd's processes through the hub and
// queues those of public rooms that came from chatd's sockets for the
// Django group. One goroutine sends them in commit order, so the
// committer never waits for the Django side's Redis round trips.
type djangoPublisher struct {
	hub     *ws.Hub
	courses bool                                // course rooms are bridged too (CHANNELS_REDIS_COURSE_GROUP)
	layer   atomic.Pointer[channelsredis.Layer] // set once the layer is open
	log     *slog.Logger
	queue   chan *chat.Message
	done    chan struct{}
	lost    atomic.Uint64
}

// djangoQueue bounds the messages waiting for the Django side; over it
// messages are not sent there (and counted), rather than slowing chatd.
const djangoQueue = 8192

func newDjangoPublisher(hub *ws.Hub, courses bool, log *slog.Logger) *djangoPublisher {
	p := &djangoPublisher{hub: hub, courses: courses, log: log, queue: make(chan *chat.Message, djangoQueue), done: make(chan struct{})}
	go p.run()
	return p
}

// Publish implements core.Publisher.
func (p *djangoPublisher) Publish(ctx context.Context, m *chat.Message, origin uint64) error {
	err := p.hub.Publish(ctx, m, origin)
	if origin == originDjango || m.Duplicate {
		// Django's consumers had it from Django's own group_send; a
		// duplicate (a client's retry) was sent to them the first time.
		return err
	}
	if r, ok := chat.ParseRoomKey(m.Room); !ok || !(r.Kind == chat.RoomPublic || r.Kind == chat.RoomCourse && p.courses) {
		return err
	}
	select {
	case p.queue <- m:
	default:
		if p.lost.Add(1)%1000 == 1 {
			p.log.Warn("channels_redis bridge: the Django side is not keeping up; messages were not sent to it", "total", p.lost.Load())
		}
	}
	return err
}

func (p *djangoPublisher) run() {
	defer close(p.done)
	for m := range p.queue {
		l := p.layer.Load()
		if l == nil {
			continue
		}
		f := ws.ChatMessageOf(m)
		fields := []channelsredis.Field{{Key: "message", Value: f.Message}, {Key: "user", Value: f.User},
			{Key: "datetime", Value: f.Datetime}, {Key: "room", Value: f.Room}}
		if f.Seq > 0 {
			fields = append(fields, channelsredis.Field{Key: "seq", Value: f.Seq})
		}
		if f.ID != "" {
			fields = append(fields, channelsredis.Field{Key: "id", Value: f.ID})
		}
		r, _ := chat.ParseRoomKey(m.Room)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.Send(ctx, r, fields)
		cancel()
		if err != nil {
			p.log.Warn("channels_redis bridge: a message could not be sent to the Django group", "room", f.Room, "err", err)
		}
	}
}

// close sends what is queued and stops.
func (p *djangoPublisher) close() {
	close(p.queue)
	<-p.done
}

// openChannelsRedis opens chatd's own Redis layer wrapped in the
// channels_redis bridge. Django events of a bridged room (public, or a
// course room with CHANNELS_REDIS_COURSE_GROUP) enter it through node, as
// messages of the sender the event names.
func openChannelsRedis(ctx context.Context, cfg *config, prefix string, st chat.Store, node *core.Node, recv chat.Receiver, log *slog.Logger) (*channelsredis.Layer, error) {
	dep, err := st.DeploymentID(ctx)
	if err != nil {
		return nil, fmt.Errorf("channels_redis layer: deployment id: %w", err)
	}
	inner, err := openLayer(ctx, layerRedis, cfg.Layer.RedisURL, prefix, recv, log)
	if err != nil {
		return nil, err
	}
	d := &cfg.djangoConfig
	ilog := log.With("component", "channels-redis")
	inbound := func(ctx context.Context, room chat.Room, ev channelsredis.Event) {
		if room.Kind != chat.RoomPublic && room.Kind != chat.RoomCourse || room.Kind == chat.RoomPublic && !chat.ValidRoomName(room.Name) {
			return
		}
		text, _ := ev.String("message")
		if inv := core.CheckText(text); inv != nil {
			ilog.Info("channels_redis bridge: refused a Django event", "room", room.Key(), "code", inv.Code)
			return
		}
		user := d.CRUser
		if u, ok := ev.String("user"); ok && chat.ValidateUsername(u) == nil {
			user = u
		}
		id, _ := ev.String("id")
		if core.CheckClientID(id) != nil {
			id = ""
		}
		err := node.Submit(ctx, &core.Post{Room: room.Key(), User: user, Text: text, ClientID: id, Origin: originDjango,
			Done: func(r core.Result) {
				if r.Err != nil {
					ilog.Warn("channels_redis bridge: a Django message could not be stored", "room", room.Key(), "err", r.Err)
				}
			}})
		if err != nil {
			ilog.Warn("channels_redis bridge: a Django message could not enter its room", "room", room.Key(), "err", err)
		}
	}
	l, err := channelsredis.New(ctx, channelsredis.Options{
		Kind:          d.CRLayer,
		Hosts:         d.hosts,
		Prefix:        d.CRPrefix,
		Capacity:      d.CRCapacity,
		Expiry:        time.Duration(d.CRExpiry) * time.Second,
		GroupExpiry:   time.Duration(d.CRGroupExpiry) * time.Second,
		SymmetricKeys: d.CRKeys,
		Serializer:    d.CRSerializer,
		RandomPrefix:  randomPrefix(d.CRRandomLen),
		Groups:        d.groups,
		CourseGroups:  d.courseGroups,
		EventType:     d.CREventType,
		Deployment:    dep,
		Inbound:       inbound,
		Logger:        ilog,
	}, inner)
	if err != nil {
		_ = inner.Close()
		return nil, err
	}
	return l, nil
}

// randomPrefix maps the setting (0 allowed) to channelsredis's (-1: none).
func randomPrefix(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// djangoSessionConfig is how chatd reads a Django site's logins.
type djangoSessionConfig struct {
	SecretKey   string   // DJANGO_SECRET_KEY (environment only: a secret)
	Fallbacks   []string // DJANGO_SECRET_KEY_FALLBACKS (environment only)
	DatabaseURL string
	Engine      string
	CookieName  string
	CookieAge   int // seconds
	UserTable   string
	Backends    string
	Recheck     time.Duration
	// CourseQuery and CourseTitleQuery put course rooms under the Django
	// site's enrolment (djangoauth's courses.go).
	CourseQuery      string
	CourseTitleQuery string
}

// bindDjangoSessions registers the Django session settings' flags.
func (e *envFlags) bindDjangoSessions(c *djangoSessionConfig) {
	c.SecretKey = strings.TrimSpace(e.getenv("DJANGO_SECRET_KEY"))
	for _, k := range strings.Split(e.getenv("DJANGO_SECRET_KEY_FALLBACKS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.Fallbacks = append(c.Fallbacks, k)
		}
	}
	e.String(&c.DatabaseURL, "django-database-url", "DJANGO_DATABASE_URL", "", "with DJANGO_SECRET_KEY: the Django site's database, postgres://... or sqlite:///path/to/db.sqlite3, read (never written) to accept its logins")
	e.String(&c.Engine, "django-session-engine", "DJANGO_SESSION_ENGINE", djangoauth.EngineDB, "the Django site's SESSION_ENGINE: db (also cached_db) or signed_cookies (the full django.contrib.sessions.backends.* name works too)")
	e.String(&c.CookieName, "django-session-cookie-name", "DJANGO_SESSION_COOKIE_NAME", djangoauth.DefaultCookieName, "the Django site's SESSION_COOKIE_NAME")
	e.Int(&c.CookieAge, "django-session-cookie-age", "DJANGO_SESSION_COOKIE_AGE", int(djangoauth.DefaultCookieAge/time.Second), "the Django site's SESSION_COOKIE_AGE in seconds (how old a signed-cookie session may be)")
	e.String(&c.UserTable, "django-user-table", "DJANGO_USER_TABLE", djangoauth.DefaultUserTable, "the table of the Django site's user model (AUTH_USER_MODEL)")
	e.String(&c.Backends, "django-authentication-backends", "DJANGO_AUTHENTICATION_BACKENDS", djangoauth.ModelBackend, "the Django site's AUTHENTICATION_BACKENDS, comma-separated: a session made by another backend is not accepted")
	e.Duration(&c.Recheck, "django-session-recheck", "DJANGO_SESSION_RECHECK", 30*time.Second, "how often the Django sessions of open sockets are checked again (logged out, password changed, account deactivated: the socket closes with 1008), and with DJANGO_COURSE_QUERY the enrolment of course-room sockets (1008 \"no longer enrolled\")")
	e.String(&c.CourseQuery, "django-course-query", "DJANGO_COURSE_QUERY", "", "with DJANGO_SECRET_KEY: SQL run on the Django database that decides who may enter course room /chat/room/<id>/, with the parameters :course (the id) and :user (the Django user's id), returning a row when they may; then the Django site's enrolment decides every course room (see docs/django.md for the educa tutorial's query)")
	e.String(&c.CourseTitleQuery, "django-course-title-query", "DJANGO_COURSE_TITLE_QUERY", "", "with DJANGO_COURSE_QUERY: SQL with the parameter :course returning a course's title (and optionally its owner's username); no row means there is no such course (404). Without it a course is called \"Course <id>\" and a missing one answers 403 like one the user is not enrolled in")
}

// validate checks the Django session settings.
func (c *djangoSessionConfig) validate() error {
	c.Engine = strings.TrimPrefix(c.Engine, "django.contrib.sessions.backends.")
	if c.Engine == "cached_db" {
		c.Engine = djangoauth.EngineDB
	}
	c.CourseQuery, c.CourseTitleQuery = strings.TrimSpace(c.CourseQuery), strings.TrimSpace(c.CourseTitleQuery)
	if c.SecretKey == "" {
		switch {
		case c.DatabaseURL != "":
			return errors.New("DJANGO_DATABASE_URL is set but DJANGO_SECRET_KEY is not: both are needed to accept the Django site's logins")
		case c.CourseQuery != "" || c.CourseTitleQuery != "":
			return errors.New("DJANGO_COURSE_QUERY needs the Django site's logins: set DJANGO_SECRET_KEY and DJANGO_DATABASE_URL too")
		}
		return nil
	}
	switch {
	case c.Engine != djangoauth.EngineDB && c.Engine != djangoauth.EngineSignedCookies:
		return fmt.Errorf("DJANGO_SESSION_ENGINE must be db, cached_db or signed_cookies, not %q", c.Engine)
	case c.DatabaseURL == "":
		return errors.New("DJANGO_SECRET_KEY is set but DJANGO_DATABASE_URL is not: chatd reads the Django site's users (and database sessions) from it")
	case c.CookieAge < 1:
		return errors.New("DJANGO_SESSION_COOKIE_AGE must be at least 1")
	case c.Recheck < 10*time.Millisecond:
		return errors.New("DJANGO_SESSION_RECHECK must be at least 10ms")
	case c.CourseTitleQuery != "" && c.CourseQuery == "":
		return errors.New("DJANGO_COURSE_TITLE_QUERY is set but DJANGO_COURSE_QUERY is not: the title query only names the courses the course query admits to")
	}
	return nil
}

// djangoLogins is web.ExternalAuth over a Django site: a valid Django
// session is the chatd account of the same username, made on first sight
// (with a random password nobody knows: Django owns the login).
type djangoLogins struct {
	v     *djangoauth.Verifier
	store chat.Store
	log   *slog.Logger
}

func (d *djangoLogins) CookieName() string { return d.v.CookieName() }

func (d *djangoLogins) Authenticate(ctx context.Context, cookie string) (*web.ExternalSession, error) {
	du, err := d.v.Verify(ctx, cookie)
	if err != nil {
		return nil, err
	}
	if chat.ValidateUsername(du.Username) != nil {
		return nil, chat.Errorf(chat.EUNAUTHORIZED, "the Django username cannot be used in chat")
	}
	u, err := d.store.UserByUsername(ctx, du.Username)
	if chat.ErrorCode(err) == chat.ENOTFOUND {
		u, err = d.createUser(ctx, du)
	}
	if err != nil {
		return nil, err
	}
	return &web.ExternalSession{User: u, ID: du.ID, Expires: du.Expires}, nil
}

// createUser makes the chatd account of a Django user seen for the first
// time.
func (d *djangoLogins) createUser(ctx context.Context, du *djangoauth.User) (*chat.User, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	hash, err := password.Hash(hex.EncodeToString(b))
	if err != nil {
		return nil, err
	}
	u := &chat.User{Username: du.Username}
	err = d.store.CreateUser(ctx, u, hash)
	if chat.ErrorCode(err) == chat.ECONFLICT { // made by a concurrent request
		return d.store.UserByUsername(ctx, du.Username)
	} else if err == nil {
		d.log.Info("django: first login of a Django user; made their chatd account", "user", du.Username, "django_id", du.ID)
	}
	return u, err
}

// djangoCourses is web.ExternalCourses over the Django site's tables
// (DJANGO_COURSE_QUERY, DJANGO_COURSE_TITLE_QUERY).
type djangoCourses struct{ v *djangoauth.Verifier }

func (d djangoCourses) Course(ctx context.Context, id int64) (*chat.Course, error) {
	c, err := d.v.Course(ctx, id)
	if errors.Is(err, djangoauth.ErrNoCourse) {
		return nil, chat.Errorf(chat.ENOTFOUND, "there is no course %d", id)
	}
	if err != nil {
		return nil, err
	}
	return &chat.Course{ID: c.ID, Title: c.Title, OwnerUsername: c.Owner}, nil
}

func (d djangoCourses) CanEnter(ctx context.Context, id int64, djangoID string) (bool, error) {
	return d.v.CanEnterCourse(ctx, id, djangoID)
}

// openDjangoLogins opens the Django site's database, or returns nil when
// DJANGO_SECRET_KEY is not set.
func openDjangoLogins(ctx context.Context, c *djangoSessionConfig, st chat.Store, log *slog.Logger) (*djangoLogins, *djangoauth.Verifier, error) {
	if c.SecretKey == "" {
		return nil, nil, nil
	}
	var backends []string
	for _, b := range strings.Split(c.Backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			backends = append(backends, b)
		}
	}
	v, err := djangoauth.Open(ctx, djangoauth.Config{
		SecretKey:   c.SecretKey,
		Fallbacks:   c.Fallbacks,
		DatabaseURL: c.DatabaseURL,
		Engine:      c.Engine,
		CookieName:  c.CookieName,
		CookieAge:   time.Duration(c.CookieAge) * time.Second,
		UserTable:   c.UserTable,
		Backends:    backends,

		CourseQuery:      c.CourseQuery,
		CourseTitleQuery: c.CourseTitleQuery,
	})
	if err != nil {
		return nil, nil, err
	}
	return &djangoLogins{v: v, store: st, log: log}, v, nil
}

// warnOwnCourses logs a warning when chatd's store has courses of its own
// while the Django site decides the course rooms: their rooms (and stored
// messages) share ids with the Django site's courses.
func warnOwnCourses(ctx context.Context, st chat.Store, log *slog.Logger) {
	cs, err := st.ListCourses(ctx)
	if err != nil || len(cs) == 0 {
		return
	}
	log.Warn("DJANGO_COURSE_QUERY is set, so the Django site decides every course room /chat/room/<id>/; chatd's own courses no longer do, "+
		"and the messages already stored in their rooms are shown to the members of the Django course with the same id (delete them with chatd deletecourse if that is wrong)",
		"chatd_courses", len(cs))
}
