// Package channelsredis lets chatd share rooms with a Django Channels site
// through channels_redis, the Redis channel layer Django projects use: a
// Django view or consumer's group_send("chat_lobby", {"type":
// "chat_message", "message": "hi"}) reaches chatd's room lobby, and a
// message sent in chatd's room lobby reaches the Django consumers of group
// chat_lobby. It speaks both channels_redis layers on the wire:
//
//   - core (channels_redis.core.RedisChannelLayer, the tutorials' layer):
//     groups are sorted sets "<prefix>:group:<group>" of channel names; a
//     group_send puts one message per process inbox (a sorted set keyed by
//     "<prefix><channel name up to '!'>"), atomically capped at the
//     inbox's capacity, and readers pop the lowest score with BZPOPMIN;
//   - pubsub (channels_redis.pubsub.RedisPubSubChannelLayer): a group is a
//     Redis pub/sub channel "<prefix>__group__<group>".
//
// Messages are msgpack (or JSON) maps, optionally Fernet-encrypted
// (symmetric_encryption_keys), in the core layer behind 12 random bytes.
//
// chatd-to-chatd traffic does not go through channels_redis: chatd's own
// envelopes are binary and pre-framed, and a Django consumer must never see
// them (an event type it has no handler for closes its socket). Layer
// therefore wraps chatd's own layer (package redis), which carries every
// group between chatd processes as before, and adds a bridge for public
// rooms (group "chat_<room>") and, with Options.CourseGroups, course rooms
// (the educa tutorial's "chat_<course id>"); private rooms are never
// bridged:
//
//   - out: cmd/chatd calls Send once for each message stored in a
//     bridged room (on the process that stored it), which group_sends it to
//     the room's Django group as {"type": "chat_message", "message": ...,
//     "user", "datetime", "room", "seq", "chatd_origin"}; chatd's own
//     members of the group are left out of the send (core) or recognise
//     their deployment's chatd_origin and drop it (pubsub), so no chatd
//     socket gets a message twice;
//   - in: while a process has local members in a bridged room it is a
//     member of the room's Django group (core: a channel name of its own in
//     the group's sorted set; pubsub: a subscription). Each Django event is
//     handed to Options.Inbound on exactly one chatd process – the holder
//     of the room's short lease in Redis – which submits it to the room
//     like any other message (stored, sequenced, then fanned out to every
//     chatd process through chatd's own layer). Events of another type
//     than chat_message / chat.message are counted and ignored.
//
// Where channels_redis is weaker than chatd's own layer, the bridge
// compensates: memberships are added again every GroupRefresh (a group
// forgets members 24 h after they joined) and after a Redis error; a
// pub/sub connection that falls silent (pinged every PingInterval) is
// made again with its subscriptions; sends
// that a full inbox refused are counted and logged (channels_redis drops
// them silently); the Redis server's clock is compared with this process's
// at start, since both layers date and expire messages by the sender's
// clock.
package channelsredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	chat "github.com/chatd/chat"
)

// Layer kinds, as CHANNELS_REDIS_LAYER names them.
const (
	KindCore   = "core"
	KindPubSub = "pubsub"
)

// Defaults of Options, which are channels_redis's.
const (
	DefaultPrefix       = "asgi"
	DefaultCapacity     = 100
	DefaultExpiry       = 60 * time.Second
	DefaultGroupExpiry  = 86400 * time.Second
	DefaultRandomPrefix = 12
	DefaultEventType    = "chat_message"
	// DefaultGroupRefresh is how often memberships are added again.
	DefaultGroupRefresh = time.Hour
	// DefaultPingInterval is how often pub/sub connections are pinged.
	DefaultPingInterval = 5 * time.Second
	// OriginKey is the extra key that marks events chatd sent.
	OriginKey = "chatd_origin"
)

// Options configure the bridge; they mirror a Django project's
// CHANNEL_LAYERS["default"]["CONFIG"].
type Options struct {
	Kind          string   // KindCore (default) or KindPubSub
	Hosts         []string // redis:// URLs, in the order of the Django setting (sharding); required
	Prefix        string   // default "asgi"
	Capacity      int      // messages an inbox holds (core); default 100
	Expiry        time.Duration
	GroupExpiry   time.Duration
	SymmetricKeys []string // symmetric_encryption_keys; the first encrypts
	Serializer    string   // SerializerMsgpack (default) or SerializerJSON
	RandomPrefix  int      // random_prefix_length (core); default 12, -1 for none
	Groups        GroupPattern
	// CourseGroups, if set (ParseCourseGroupPattern), bridges course rooms
	// too: course 12's room is Django group "chat_12" with the educa
	// tutorial's pattern "chat_{course}". Zero: course rooms are chatd's
	// alone.
	CourseGroups GroupPattern
	EventType    string // type of the events chatd sends; default "chat_message"

	// Deployment names this chatd deployment (the store's DeploymentID):
	// processes that share it recognise each other's messages and leases.
	Deployment string
	// Inbound receives each Django event of a bridged room (a public room,
	// or a course room with CourseGroups) on exactly one process of the
	// deployment. It runs on the bridge's reader goroutine, one event at a
	// time, in arrival order; it may block briefly (chatd's commit queue)
	// but should return.
	Inbound func(ctx context.Context, room chat.Room, ev Event)

	GroupRefresh time.Duration // default DefaultGroupRefresh
	Timeout      time.Duration // bounds each Redis command; default 3 s
	// PingInterval is how often each pub/sub connection (pubsub) is
	// pinged: one that delivers nothing, not even the answer, for
	// PingInterval + Timeout is taken for dead (a peer gone without a
	// FIN, a NAT that forgot the flow) and made again, its subscriptions
	// with it. Default DefaultPingInterval.
	PingInterval time.Duration
	Logger       *slog.Logger
	Now          func() time.Time // default time.Now
}

func (o *Options) setDefaults() error {
	if o.Kind == "" {
		o.Kind = KindCore
	}
	if o.Kind != KindCore && o.Kind != KindPubSub {
		return fmt.Errorf("channelsredis: layer must be core or pubsub, not %q", o.Kind)
	}
	if len(o.Hosts) == 0 {
		return errors.New("channelsredis: no hosts")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Expiry <= 0 {
		o.Expiry = DefaultExpiry
	}
	if o.GroupExpiry <= 0 {
		o.GroupExpiry = DefaultGroupExpiry
	}
	switch o.Serializer {
	case "":
		o.Serializer = SerializerMsgpack
	case SerializerMsgpack, SerializerJSON:
	default:
		return fmt.Errorf("channelsredis: serializer must be msgpack or json, not %q", o.Serializer)
	}
	if o.RandomPrefix == 0 {
		o.RandomPrefix = DefaultRandomPrefix
	} else if o.RandomPrefix < 0 {
		o.RandomPrefix = 0
	}
	if o.Groups.IsZero() {
		o.Groups, _ = ParseGroupPattern(DefaultGroupPattern)
	}
	if o.EventType == "" {
		o.EventType = DefaultEventType
	}
	if o.Deployment == "" {
		return errors.New("channelsredis: no deployment id")
	}
	if o.GroupRefresh <= 0 {
		o.GroupRefresh = DefaultGroupRefresh
	}
	if o.GroupRefresh > o.GroupExpiry/4 {
		o.GroupRefresh = o.GroupExpiry / 4
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Layer is chatd's own channel layer with a channels_redis bridge for the
// public rooms. It implements chat.Layer (everything is delegated to the
// wrapped layer; Subscribe and Unsubscribe of a public room's group also
// join and leave its Django group) and chat.RestoreNotifier when the
// wrapped layer does.
type Layer struct {
	inner chat.Layer
	b     *bridge
}

var (
	_ chat.Layer           = (*Layer)(nil)
	_ chat.RestoreNotifier = (*Layer)(nil)
)

// New connects the bridge and returns a Layer around inner, which it owns
// (Close closes it). Like chatd's own layer it does not fail when Redis is
// unreachable: Err reports it and the bridge keeps trying.
func New(ctx context.Context, opt Options, inner chat.Layer) (*Layer, error) {
	if err := opt.setDefaults(); err != nil {
		return nil, err
	}
	b, err := newBridge(ctx, opt)
	if err != nil {
		return nil, err
	}
	return &Layer{inner: inner, b: b}, nil
}

// djangoGroup returns the Django group of the chatd group (a room's key)
// if that room is bridged: a public room, or a course room when
// CourseGroups is set.
func (l *Layer) djangoGroup(group string) (string, chat.Room, bool) {
	r, ok := chat.ParseRoomKey(group)
	if !ok {
		return "", r, false
	}
	g, ok := l.b.groupOf(r)
	return g, r, ok
}

// Publish implements chat.Layer: chatd's envelopes go to chatd processes
// only (see SendChat for the Django side).
func (l *Layer) Publish(ctx context.Context, group string, msg []byte) error {
	return l.inner.Publish(ctx, group, msg)
}

// Subscribe implements chat.Layer. For a public room it also joins the
// room's Django group, so Django's group_send reaches chatd; a failure to
// join is logged and retried by the bridge, not returned (the room works
// between chatd processes meanwhile).
func (l *Layer) Subscribe(ctx context.Context, group string) error {
	if err := l.inner.Subscribe(ctx, group); err != nil {
		return err
	}
	if g, room, ok := l.djangoGroup(group); ok {
		l.b.join(ctx, g, room)
	}
	return nil
}

// Unsubscribe implements chat.Layer.
func (l *Layer) Unsubscribe(ctx context.Context, group string) error {
	err := l.inner.Unsubscribe(ctx, group)
	if g, _, ok := l.djangoGroup(group); ok {
		l.b.leave(ctx, g)
	}
	return err
}

// Err implements chat.Layer: the wrapped layer's error, else the bridge's.
func (l *Layer) Err() error {
	if err := l.inner.Err(); err != nil {
		return err
	}
	return l.b.Err()
}

// Close implements chat.Layer: it leaves every Django group and closes
// both layers.
func (l *Layer) Close() error {
	l.b.close()
	return l.inner.Close()
}

// OnRestore implements chat.RestoreNotifier for the wrapped layer.
func (l *Layer) OnRestore(f func()) {
	if rn, ok := l.inner.(chat.RestoreNotifier); ok {
		rn.OnRestore(f)
	}
}

// CheckRoom returns an error saying why room cannot be a public room on
// this layer, or nil: its Django group name would be invalid, or (with
// CourseGroups) it would be a course room's group – with the tutorials'
// patterns chat_{room} and chat_{course}, public room "12" and course 12
// would share the group chat_12.
func (l *Layer) CheckRoom(room string) error {
	if err := l.b.opt.Groups.CheckRoom(room); err != nil {
		return err
	}
	g, _ := l.b.opt.Groups.Group(room)
	if id, ok := l.b.courseOfGroup(g); ok {
		return fmt.Errorf("this server shares its rooms with a Django Channels site, where %s is the group of course %d's chat room; pick another room name", g, id)
	}
	return nil
}

// Bridged reports whether room's messages are sent to a Django group.
func (l *Layer) Bridged(room chat.Room) bool {
	_, ok := l.b.groupOf(room)
	return ok
}

// SendChat group_sends a message of public room to the room's Django
// group (see Send).
func (l *Layer) SendChat(ctx context.Context, room string, fields []Field) (full int, err error) {
	return l.Send(ctx, chat.PublicRoom(room), fields)
}

// Send group_sends a message of a bridged room (Bridged) to the room's
// Django group: fields are the chat_message frame's keys and values after
// "type" (message, user, datetime, room, seq, id); the event's type is
// Options.EventType and it carries OriginKey. It reports how many inboxes
// were full (core; the message did not reach their consumers).
func (l *Layer) Send(ctx context.Context, room chat.Room, fields []Field) (full int, err error) {
	g, ok := l.b.groupOf(room)
	if !ok {
		return 0, nil // not bridged, or refused before it could be created: nothing to do
	}
	ev := make([]Field, 0, len(fields)+2)
	ev = append(ev, Field{"type", l.b.opt.EventType})
	for _, f := range fields {
		if f.Key != "type" && f.Key != channelKey && f.Key != OriginKey {
			ev = append(ev, f)
		}
	}
	ev = append(ev, Field{OriginKey, l.b.opt.Deployment})
	return l.b.groupSend(ctx, g, ev)
}

// Stats are the bridge's counters.
type Stats struct {
	Sent        uint64 `json:"sent"`        // group_sends to Django groups
	Full        uint64 `json:"full"`        // inboxes that refused a send (capacity)
	Received    uint64 `json:"received"`    // Django events handed to Inbound
	Ignored     uint64 `json:"ignored"`     // events of another type, or without a message
	Undecodable uint64 `json:"undecodable"` // messages that could not be read (serializer, keys)
	Skipped     uint64 `json:"skipped"`     // events another chatd process took (lease)
	Silent      uint64 `json:"silent"`      // pub/sub connections that fell silent and were made again
}

// Stats returns the bridge's counters.
func (l *Layer) Stats() Stats { return l.b.stats() }

// ChannelName returns this process's channel name in group g (core), for
// tests and diagnostics.
func (l *Layer) ChannelName(group string) string { return l.b.channelName(group) }

// mu-guarded set of the Django groups this process holds.
type groupSet struct {
	mu     sync.Mutex
	groups map[string]chat.Room // Django group -> room
}

func (s *groupSet) add(g string, room chat.Room) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.groups[g]
	s.groups[g] = room
	return !had
}

func (s *groupSet) remove(g string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.groups[g]
	delete(s.groups, g)
	return had
}

func (s *groupSet) room(g string) (chat.Room, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.groups[g]
	return r, ok
}

func (s *groupSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	return out
}

// isChatType reports whether an event type is a chat message: Channels
// dispatches "chat.message" and "chat_message" to the same handler.
func isChatType(t string) bool { return strings.ReplaceAll(t, ".", "_") == "chat_message" }

// groupOf returns room's Django group, if the room is bridged and its
// group name is valid.
func (b *bridge) groupOf(room chat.Room) (string, bool) {
	switch room.Kind {
	case chat.RoomPublic:
		return b.opt.Groups.Group(room.Name)
	case chat.RoomCourse:
		if b.opt.CourseGroups.IsZero() {
			return "", false
		}
		return b.opt.CourseGroups.Group(strconv.FormatInt(room.CourseID, 10))
	}
	return "", false
}

// courseOfGroup returns the course whose room's Django group is g, if
// course rooms are bridged and g is one.
func (b *bridge) courseOfGroup(g string) (int64, bool) {
	if b.opt.CourseGroups.IsZero() {
		return 0, false
	}
	s, ok := b.opt.CourseGroups.Room(g)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, false
	}
	return id, true
}
