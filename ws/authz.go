package ws

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	chat "github.com/chatd/chat"
)

// Access re-checks. The web layer authorises a connection on the upgrade;
// membership can change afterwards (a student is unenrolled, a session ends
// or expires). A connection whose JoinOptions.Recheck is set is therefore
// checked again:
//
//   - before every message it sends (recheckBeforeSend, on the reader
//     goroutine), so a user who lost access can never send another message;
//   - on every Hub.Recheck, which the web layer calls periodically, so a user
//     who only listens is closed too.
//
// A Recheck returns nil while access stands. A *chat.Error (other than
// EINTERNAL and EUNAVAILABLE) means access is gone: the connection is closed
// with 1008 and the error's message as the reason. Any other error is
// treated as transient (the store is unreachable): the message being sent is
// refused with an error frame, and a periodic check keeps the connection.

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

// recheckBeforeSend runs c's Recheck before a message is published and
// reports whether the message may go out.
func (c *Conn) recheckBeforeSend() bool {
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	err := c.recheck(ctx)
	cancel()
	if err == nil {
		return true
	}
	if !c.revokeIfDenied(err) {
		c.hub.log.Warn("ws: access check failed", "path", c.path, "user", c.user.Username, "err", err)
		c.enqueue(newErrorFrame(CodeUnavailable, "your access to this room could not be checked; the message was not sent, try again"))
	}
	return false
}

// revokeIfDenied closes c (1008, with the error's message as the reason)
// when err from its Recheck means access is gone, and reports whether it did.
func (c *Conn) revokeIfDenied(err error) bool {
	reason, gone := denied(err)
	if gone {
		c.hub.log.Info("ws: access revoked", "path", c.path, "user", c.user.Username, "reason", reason)
		c.Close(ClosePolicyViolation, reason)
	}
	return gone
}

// Recheck runs the Recheck of every local connection that has one, one at a
// time, and closes (1008) those whose access is gone. It returns how many it
// closed. Transient errors are logged and leave the connection open.
func (h *Hub) Recheck(ctx context.Context) int {
	closed := 0
	for _, c := range h.snapshot() {
		if c.recheck == nil {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, recheckTimeout)
		err := c.recheck(cctx)
		cancel()
		if err == nil {
			continue
		}
		if c.revokeIfDenied(err) {
			closed++
		} else if ctx.Err() == nil {
			h.log.Warn("ws: access check failed", "path", c.path, "user", c.user.Username, "err", err)
		}
	}
	return closed
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
