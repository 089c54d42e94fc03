package ws

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	chat "github.com/chatd/chat"
)

// Access checks after the upgrade. The web layer authorises a connection on
// the upgrade. Access taken away later (logout, unenroll, a deleted course
// or account, on any process or by an admin command) is recorded in the
// store; every process polls those revocations (core.Node.WatchRevocations)
// and closes the matching local connections with Hub.Revoke – within about
// a second, whatever the channel layer's state, and without a store query
// per message. A connection's JoinOptions.Recheck runs once, after it has
// joined and before its 101, so a revocation made while it was opening is
// not missed either. A Recheck returns nil while access stands; a
// *chat.Error (other than EINTERNAL and EUNAVAILABLE) means access is gone.

// recheckTimeout bounds one Recheck call.
const recheckTimeout = 5 * time.Second

// denied reports whether err from a Recheck means access is gone.
func denied(err error) (reason string, gone bool) {
	var ce *chat.Error
	if errors.As(err, &ce) && ce.Code != chat.EINTERNAL && ce.Code != chat.EUNAVAILABLE {
		return ce.Message, true
	}
	return "", false
}

// PublishControl sends ctl to every hub attached to layer, without a Hub of
// its own: the admin commands use it to close an unenrolled user's sockets
// on the servers sharing a Redis layer. As with Hub.CloseWhere, at least one
// selector must be set; Op defaults to "close" and Code to 1008.
func PublishControl(ctx context.Context, layer chat.Layer, ctl Control) error {
	if ctl.User == "" && ctl.Session == "" && ctl.Group == "" {
		return errors.New("ws: PublishControl needs a selector")
	}
	if ctl.Op == "" {
		ctl.Op = "close"
	}
	if ctl.Code == 0 {
		ctl.Code = ClosePolicyViolation
	}
	body, err := json.Marshal(ctl)
	if err != nil {
		return err
	}
	// Process id 0: no hub has it, and control messages are applied by
	// every hub wherever they come from.
	env := make([]byte, envHeader, envHeader+len(body))
	env[0] = kindControl
	return layer.Publish(ctx, controlGroup, append(env, body...))
}
