package chat

import "context"

type userKey struct{}

// User is a person using chat: a signed-in account or a guest.
type User struct {
	ID          int64  // 0 for guests
	Username    string // unique; guests get a generated "guest-xxxx" name
	DisplayName string
	IsAdmin     bool // may use /manage/ (createuser --admin, grantadmin)
	Deactivated bool // may not sign in (Store.SetUserActive)
}

// Guest reports whether u is an anonymous visitor rather than an account.
func (u *User) Guest() bool { return u.ID == 0 }

// NewContextWithUser returns a copy of ctx that carries u.
func NewContextWithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFromContext returns the user carried by ctx, or nil.
func UserFromContext(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}
