package chat

import (
	"errors"
	"fmt"
)

// Application error codes. The web and ws packages map them to HTTP statuses
// and WebSocket close codes; only EINTERNAL is logged as a server fault.
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ECONFLICT     = "conflict"
	EUNAVAILABLE  = "unavailable"
	EINTERNAL     = "internal"
)

// Error is an application error: a machine-readable Code and a Message that
// is safe to show to the user.
type Error struct {
	Code    string
	Message string

	// Format and Args are what Errorf made Message from, so that a page
	// can show the message in its reader's language (Format is the key of
	// its translation). Empty for an Error made as a literal.
	Format string
	Args   []any
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("chat: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Format: format, Args: args}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of the first *Error in err's
// chain, or a generic text for internal errors, which must not leak details.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
