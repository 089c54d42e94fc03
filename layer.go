package chat

import "context"

// Layer is the channel layer: it carries messages between chatd processes,
// the way a Django Channels layer carries group_send between workers.
//
// chatd keeps Channels' ideas (groups; a channel per connection) but splits
// the work: each process runs a hub that maps groups (rooms) to its own local
// connections, and subscribes to a group on the layer once, when its first
// local member joins. A message published to a group is therefore sent to the
// layer once per message and delivered once to every subscribed process, which
// then fans it out locally. Direct sends to one connection, or to all of one
// user's connections, are built by the hub on top of groups (a group per
// process, a control group), so every Layer gets them for free.
//
// Delivery is at most once, like Redis pub/sub and channels_redis: a layer
// may drop messages while it is disconnected. Reliability comes from the
// store and from clients recovering by sequence number, not from the layer.
//
// Implementations must be safe for concurrent use. Messages published by one
// goroutine to one group must be delivered to each subscribed process in the
// order they were published.
type Layer interface {
	// Publish sends msg to every process subscribed to group, this one
	// included. It returns an error if the message could not be handed to the
	// transport (for example Redis is unreachable); the caller must then tell
	// the sender. msg must not be modified after the call.
	Publish(ctx context.Context, group string, msg []byte) error

	// Subscribe makes this process receive group's messages through the
	// Receiver the layer was created with. Subscribing to a group twice is the
	// same as once; the hub counts members itself.
	Subscribe(ctx context.Context, group string) error

	// Unsubscribe stops delivery of group's messages to this process.
	Unsubscribe(ctx context.Context, group string) error

	// Err reports why the layer cannot deliver between processes right now
	// (nil when it is healthy). Health endpoints show it.
	Err() error

	// Close releases the layer's resources. Publish and Subscribe fail after it.
	Close() error
}

// Receiver is called by a Layer for every message of a subscribed group. It is
// called from the layer's own goroutines and must not block: the hub only
// queues the message for its connections. The receiver owns msg and may keep
// it: a layer must not modify or reuse msg after handing it over.
type Receiver func(group string, msg []byte)

// RestoreNotifier is implemented by a Layer that can lose messages while
// its connection to a shared backend is down (Redis). After the connection
// is restored and every group is subscribed again, it calls each function
// registered with OnRestore, so the hub can read what its rooms missed from
// the store. The functions run on the layer's goroutine and must not block.
type RestoreNotifier interface {
	OnRestore(f func())
}
